package index

import (
	"encoding/binary"
	"errors"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// pTagChecked records when a proxied tag was last confirmed upstream, so a
// tag is revalidated at most once per TTL.
const pTagChecked = "v/" // v/<repo>\0<tag> → unix nanoseconds

// TagChecked returns when repo:tag was last confirmed upstream.
func (tx *badgerTxn) TagChecked(repo, tag string) (time.Time, error) {
	it, err := tx.t.Get([]byte(pTagChecked + repo + "\x00" + tag))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return time.Time{}, ErrNotFound
	}
	var t time.Time
	if err == nil {
		err = it.Value(func(b []byte) error {
			if len(b) == 8 {
				t = time.Unix(0, int64(binary.BigEndian.Uint64(b)))
			}
			return nil
		})
	}
	if err != nil {
		return time.Time{}, fail(err, "read when %s:%s was checked upstream", repo, tag)
	}
	return t, nil
}

// SetTagChecked records a confirmation of repo:tag at t.
func (tx *badgerTxn) SetTagChecked(repo, tag string, t time.Time) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(t.UnixNano()))
	if err := tx.t.Set([]byte(pTagChecked+repo+"\x00"+tag), b[:]); err != nil {
		return fail(err, "record that %s:%s was checked upstream", repo, tag)
	}
	return nil
}
