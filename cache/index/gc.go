package index

import (
	"errors"
	"strings"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/wharf-registry/wharf/oci"
)

// EachLink visits every blob link (repository, digest), repository by
// repository. It reads keys only.
func (tx *badgerTxn) EachLink(fn func(repo string, d oci.Digest) error) error {
	return tx.scan(pLink, "", false, func(k string, _ []byte) (bool, error) {
		repo, d, ok := strings.Cut(k[len(pLink):], "\x00")
		if !ok {
			return true, nil
		}
		return true, fn(repo, oci.Digest(d))
	})
}

// IsConflict reports whether err is a transaction conflict that Update
// gave up retrying: another writer kept changing what fn read. Callers
// that can skip the work (garbage collection) treat it as "busy, later".
func IsConflict(err error) bool {
	return errors.Is(err, badger.ErrConflict) || errors.Is(err, ErrConflict)
}
