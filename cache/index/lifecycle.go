package index

import (
	"encoding/binary"
	"errors"
	"strings"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/wharf-registry/wharf/oci"
)

// Secondary keys for the cache's lifecycle:
//
//	a/<8-byte big-endian unix ns of last access><digest> → ""   evictable blobs, oldest first
//	s/<origin> → 16 bytes: total size, count                       usage per origin, O(1) to read
//	P/<digest>\0<rule> → ""                                        pins
//
// Eviction walks a/ from the front: evicting k entries costs k seeks and
// k deletes, never a scan of everything.
const (
	pAccess = "a/"
	pUsage  = "s/"
	pPin    = "P/"
)

func accessKey(t time.Time, d oci.Digest) []byte {
	k := make([]byte, 0, len(pAccess)+8+len(d))
	k = append(k, pAccess...)
	k = binary.BigEndian.AppendUint64(k, uint64(t.UnixNano()))
	return append(k, d...)
}

// remember adds r's secondary keys and counts it in its origin's usage.
func (tx *badgerTxn) remember(r BlobRecord) error {
	if r.Evictable() {
		if err := tx.t.Set(accessKey(r.LastAccess, r.Digest), lruValue(r)); err != nil {
			return err
		}
	}
	return tx.addUsage(r.Origin, r.Size, 1)
}

// forget removes what remember added.
func (tx *badgerTxn) forget(r BlobRecord) error {
	if r.Evictable() {
		if err := tx.t.Delete(accessKey(r.LastAccess, r.Digest)); err != nil {
			return err
		}
	}
	return tx.addUsage(r.Origin, -r.Size, -1)
}

// Usage is the stored bytes and blob count of one origin.
type Usage struct {
	Bytes int64
	Count int64
}

func (tx *badgerTxn) addUsage(origin string, bytes, count int64) error {
	if origin == "" {
		origin = OriginHosted
	}
	u, err := tx.Usage(origin)
	if err != nil {
		return err
	}
	u.Bytes += bytes
	u.Count += count
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(u.Bytes))
	binary.BigEndian.PutUint64(b[8:], uint64(u.Count))
	return tx.t.Set([]byte(pUsage+origin), b[:])
}

// Usage returns one origin's totals.
func (tx *badgerTxn) Usage(origin string) (Usage, error) {
	it, err := tx.t.Get([]byte(pUsage + origin))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return Usage{}, nil
	}
	var u Usage
	if err == nil {
		err = it.Value(func(b []byte) error {
			if len(b) == 16 {
				u.Bytes = int64(binary.BigEndian.Uint64(b[:8]))
				u.Count = int64(binary.BigEndian.Uint64(b[8:]))
			}
			return nil
		})
	}
	if err != nil {
		return Usage{}, fail(err, "read usage of %s", origin)
	}
	return u, nil
}

// Usages returns the totals of every origin.
func (tx *badgerTxn) Usages() (map[string]Usage, error) {
	out := map[string]Usage{}
	err := tx.scan(pUsage, "", false, func(k string, _ []byte) (bool, error) {
		origin := k[len(pUsage):]
		u, err := tx.Usage(origin)
		out[origin] = u
		return true, err
	})
	if err != nil {
		return nil, fail(err, "read usage")
	}
	return out, nil
}

// Touch records reads of d: last access at t and hits more hits. It keeps
// the LRU order; a missing record is ignored (evicted meanwhile).
func (tx *badgerTxn) Touch(d oci.Digest, t time.Time, hits int64) error {
	if err := tx.touch(d, t, hits); err != nil {
		return fail(err, "record reads of %s", d)
	}
	return nil
}

func (tx *badgerTxn) touch(d oci.Digest, t time.Time, hits int64) error {
	r, err := tx.Blob(d)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !t.After(r.LastAccess) && hits == 0 {
		return nil
	}
	if r.Evictable() {
		if err := tx.t.Delete(accessKey(r.LastAccess, d)); err != nil {
			return err
		}
	}
	if t.After(r.LastAccess) {
		r.LastAccess = t
	}
	r.Hits += hits
	if r.Evictable() {
		if err := tx.t.Set(accessKey(r.LastAccess, d), lruValue(r)); err != nil {
			return err
		}
	}
	return tx.setBlob(d, r)
}

// EachLeastRecent visits evictable blobs from the least recently used,
// stopping when fn returns false or at the first one used at or after
// before (zero: no limit).
func (tx *badgerTxn) EachLeastRecent(before time.Time, fn func(d oci.Digest, lastAccess time.Time) (bool, error)) error {
	o := badger.DefaultIteratorOptions
	o.PrefetchValues = false
	o.Prefix = []byte(pAccess)
	it := tx.t.NewIterator(o)
	defer it.Close()
	for it.Rewind(); it.ValidForPrefix([]byte(pAccess)); it.Next() {
		k := it.Item().Key()
		if len(k) < len(pAccess)+8 {
			continue
		}
		t := time.Unix(0, int64(binary.BigEndian.Uint64(k[len(pAccess):len(pAccess)+8])))
		if !before.IsZero() && !t.Before(before) {
			return nil
		}
		cont, err := fn(oci.Digest(k[len(pAccess)+8:]), t)
		if err != nil || !cont {
			return err
		}
	}
	return nil
}

// Pin marks d as pinned by rule (an image reference pattern).
func (tx *badgerTxn) Pin(d oci.Digest, rule string) error {
	if err := tx.t.Set([]byte(pPin+string(d)+"\x00"+rule), nil); err != nil {
		return fail(err, "pin %s (%s)", d, rule)
	}
	return nil
}

// Unpin removes rule's pin on d ("" removes every pin on d).
func (tx *badgerTxn) Unpin(d oci.Digest, rule string) error {
	if err := tx.unpin(d, rule); err != nil {
		return fail(err, "unpin %s", d)
	}
	return nil
}

func (tx *badgerTxn) unpin(d oci.Digest, rule string) error {
	if rule != "" {
		return tx.del(pPin + string(d) + "\x00" + rule)
	}
	var keys []string
	err := tx.scan(pPin+string(d)+"\x00", "", false, func(k string, _ []byte) (bool, error) {
		keys = append(keys, k)
		return true, nil
	})
	for _, k := range keys {
		if err := tx.del(k); err != nil {
			return err
		}
	}
	return err
}

// Pinned reports whether any rule pins d.
func (tx *badgerTxn) Pinned(d oci.Digest) (bool, error) {
	found := false
	err := tx.scan(pPin+string(d)+"\x00", "", false, func(string, []byte) (bool, error) {
		found = true
		return false, nil
	})
	if err != nil {
		return false, fail(err, "look up pins of %s", d)
	}
	return found, nil
}

// PinRules lists every pin as digest → rules.
func (tx *badgerTxn) PinRules() (map[oci.Digest][]string, error) {
	out := map[oci.Digest][]string{}
	err := tx.scan(pPin, "", false, func(k string, _ []byte) (bool, error) {
		d, rule, _ := strings.Cut(k[len(pPin):], "\x00")
		out[oci.Digest(d)] = append(out[oci.Digest(d)], rule)
		return true, nil
	})
	if err != nil {
		return nil, fail(err, "list pins")
	}
	return out, nil
}

// ManifestRepos lists the repositories holding a manifest record for d.
func (tx *badgerTxn) ManifestRepos(d oci.Digest) ([]string, error) {
	repos, err := tx.BlobRepos(d)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range repos {
		if _, err := tx.Manifest(r, d); err == nil {
			out = append(out, r)
		} else if !errors.Is(err, ErrNotFound) {
			return nil, err
		}
	}
	return out, nil
}

// PinsOf lists the rules pinning d.
func (tx *badgerTxn) PinsOf(d oci.Digest) ([]string, error) {
	prefix := pPin + string(d) + "\x00"
	var out []string
	err := tx.scan(prefix, "", false, func(k string, _ []byte) (bool, error) {
		out = append(out, k[len(prefix):])
		return true, nil
	})
	if err != nil {
		return nil, fail(err, "list pins of %s", d)
	}
	return out, nil
}
