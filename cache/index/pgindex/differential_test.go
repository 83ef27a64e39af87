//go:build linux

package pgindex_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wharf-registry/wharf/cache/index"
	"github.com/wharf-registry/wharf/oci"
)

// The same random sequence of operations on Badger's index and on this
// one gives the same results and leaves the same state, as read by every
// read method of Txn: hosted, cache, eviction and GC code cannot tell
// them apart. The key spaces are small, so that operations meet: the
// same blobs, repositories and tags are written, linked, deleted and
// evicted again and again.
func TestSameAsBadger(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			bx, err := index.Open("", index.Options{InMemory: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { bx.Close() })
			px := open(t)
			w := world{rng: rand.New(rand.NewPCG(seed, 42))}
			for step := range 300 {
				op := w.op()
				b, p := op.run(bx), op.run(px)
				if b != p {
					t.Fatalf("step %d, %s:\nbadger:   %s\npostgres: %s", step, op.name, b, p)
				}
				if step%10 == 9 {
					bs, ps := w.dump(t, bx), w.dump(t, px)
					if bs != ps {
						t.Fatalf("after step %d (%s), the indexes differ:\n%s", step, op.name, diff(bs, ps))
					}
				}
			}
		})
	}
}

func diff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for i := range max(len(al), len(bl)) {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			out = append(out, "badger:   "+x, "postgres: "+y)
		}
	}
	return strings.Join(out, "\n")
}

var base = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

type world struct{ rng *rand.Rand }

var (
	repos   = []string{"a", "a/b", "ab", "b", "hub/x"}
	tags    = []string{"latest", "v1", "v1.1", "v2", "A"}
	origins = []string{"", index.OriginHosted, index.OriginRecovered, "hub", "quay"}
	rules   = []string{"hub/x:*", "a:v1"}
)

func (w *world) digest() oci.Digest { return dgN(w.rng.IntN(10)) }
func (w *world) repo() string       { return repos[w.rng.IntN(len(repos))] }
func (w *world) tag() string        { return tags[w.rng.IntN(len(tags))] }

// at is a time on a minute grid, with nanoseconds, as time.Now has.
func (w *world) at() time.Time {
	return base.Add(time.Duration(w.rng.IntN(30))*time.Minute + time.Duration(w.rng.IntN(3))*time.Nanosecond)
}

func dgN(i int) oci.Digest { return oci.FromBytes([]byte(fmt.Sprint("blob ", i))) }

type op struct {
	name string
	run  func(x index.Index) string
}

// upd runs fn in an Update and says how it ended.
func upd(fn func(tx index.Txn) error) func(x index.Index) string {
	return func(x index.Index) string { return outcome(x.Update(context.Background(), fn)) }
}

func outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, index.ErrNotFound):
		return "not found"
	default:
		return "error: " + err.Error()
	}
}

func (w *world) op() op {
	switch k := w.rng.IntN(17); k {
	case 0, 1, 2:
		r := index.BlobRecord{Digest: w.digest(), Size: int64(w.rng.IntN(100)), MediaType: "a/b", Created: w.at(),
			LastAccess: w.at(), Origin: origins[w.rng.IntN(len(origins))], Hits: int64(w.rng.IntN(3))}
		if w.rng.IntN(3) == 0 && !r.Evictable() {
			// An evictable record always has a last access (a fill
			// sets it). One without is where the two differ on
			// purpose: Badger's LRU key of the zero time sorts last,
			// as if read in 1754; here it is the least recently used.
			r.LastAccess = time.Time{}
		}
		return op{fmt.Sprintf("PutBlob(%+v)", r), upd(func(tx index.Txn) error { return tx.PutBlob(r) })}
	case 3:
		d := w.digest()
		return op{"DeleteBlob " + string(d), upd(func(tx index.Txn) error { return tx.DeleteBlob(d) })}
	case 4, 5:
		repo, d := w.repo(), w.digest()
		return op{"LinkBlob " + repo, upd(func(tx index.Txn) error { return tx.LinkBlob(repo, d) })}
	case 6:
		repo, d := w.repo(), w.digest()
		return op{"UnlinkBlob " + repo, upd(func(tx index.Txn) error { return tx.UnlinkBlob(repo, d) })}
	case 7:
		repo := w.repo()
		m := index.ManifestRecord{Digest: w.digest(), MediaType: oci.MediaTypeOCIManifest, Size: int64(w.rng.IntN(1000)), Created: w.at()}
		if w.rng.IntN(2) == 0 {
			s := w.digest()
			m.Subject, m.ArtifactType = &s, "application/x"
			m.Annotations = map[string]string{"k": fmt.Sprint(w.rng.IntN(3))}
		}
		return op{"PutManifest " + repo, upd(func(tx index.Txn) error {
			if err := tx.PutManifest(repo, m); err != nil {
				return err
			}
			if m.Subject != nil {
				return tx.AddReferrer(repo, *m.Subject, oci.Descriptor{MediaType: m.MediaType, Digest: m.Digest, Size: m.Size, ArtifactType: m.ArtifactType})
			}
			return nil
		})}
	case 8:
		repo, d := w.repo(), w.digest()
		return op{"DeleteManifest " + repo, upd(func(tx index.Txn) error { return tx.DeleteManifest(repo, d) })}
	case 9:
		repo, tag, d := w.repo(), w.tag(), w.digest()
		return op{"SetTag " + repo + ":" + tag, upd(func(tx index.Txn) error { return tx.SetTag(repo, tag, d) })}
	case 10:
		repo, tag := w.repo(), w.tag()
		return op{"DeleteTag " + repo + ":" + tag, upd(func(tx index.Txn) error { return tx.DeleteTag(repo, tag) })}
	case 11:
		id := fmt.Sprint("up", w.rng.IntN(4))
		r := index.UploadRecord{ID: id, Repo: w.repo(), Started: w.at()}
		if w.rng.IntN(3) == 0 {
			return op{"DeleteUpload " + id, upd(func(tx index.Txn) error { return tx.DeleteUpload(id) })}
		}
		return op{"PutUpload " + id, upd(func(tx index.Txn) error { return tx.PutUpload(r) })}
	case 12:
		// Reads of several blobs in one transaction, as the cache's
		// flusher records them, some read twice.
		type read struct {
			d    oci.Digest
			at   time.Time
			hits int64
		}
		var reads []read
		for range 1 + w.rng.IntN(4) {
			reads = append(reads, read{w.digest(), w.at(), int64(w.rng.IntN(2))})
		}
		return op{fmt.Sprint("Touch ", reads), upd(func(tx index.Txn) error {
			for _, r := range reads {
				if err := tx.Touch(r.d, r.at, r.hits); err != nil {
					return err
				}
			}
			// Reads in the same transaction see them.
			_, err := tx.Blob(reads[0].d)
			if errors.Is(err, index.ErrNotFound) {
				return nil
			}
			return err
		})}
	case 13:
		d, rule := w.digest(), rules[w.rng.IntN(len(rules))]
		switch w.rng.IntN(3) {
		case 0:
			return op{"Unpin " + rule, upd(func(tx index.Txn) error { return tx.Unpin(d, rule) })}
		case 1:
			return op{"Unpin all", upd(func(tx index.Txn) error { return tx.Unpin(d, "") })}
		}
		return op{"Pin " + rule, upd(func(tx index.Txn) error { return tx.Pin(d, rule) })}
	case 14:
		repo, tag, at := w.repo(), w.tag(), w.at()
		return op{"SetTagChecked", upd(func(tx index.Txn) error { return tx.SetTagChecked(repo, tag, at) })}
	case 15:
		var ds []oci.Digest
		for range w.rng.IntN(4) {
			ds = append(ds, w.digest())
		}
		return op{fmt.Sprint("DeleteBlobs ", ds), func(x index.Index) string {
			recs, err := x.DeleteBlobs(context.Background(), ds)
			var s []string
			for _, r := range recs {
				s = append(s, blobString(r))
			}
			return strings.Join(s, "; ") + " " + outcome(err)
		}}
	default:
		// A window of the LRU order from a cursor, some digests besides,
		// evicted before a time or without a limit.
		n := 1 + w.rng.IntN(4)
		var extra []index.LRUEntry
		for range w.rng.IntN(3) {
			extra = append(extra, index.LRUEntry{Digest: w.digest()})
		}
		var before time.Time
		if w.rng.IntN(2) == 0 {
			before = w.at()
		}
		return op{fmt.Sprint("EvictBlobs ", n, extra, before), func(x index.Index) string {
			var cands []index.LRUEntry
			var c index.LRUCursor
			err := x.View(func(tx index.Txn) error {
				return tx.EachLeastRecentAfter(&c, time.Time{}, func(e index.LRUEntry) (bool, error) {
					cands = append(cands, e)
					return len(cands) < n, nil
				})
			})
			if err != nil {
				return outcome(err)
			}
			gone, err := x.EvictBlobs(context.Background(), append(cands, extra...), before)
			return fmt.Sprint(lruStrings(gone), " ", outcome(err))
		}}
	}
}

func blobString(r index.BlobRecord) string {
	return fmt.Sprintf("%s size=%d type=%q origin=%q created=%s access=%s hits=%d",
		r.Digest[7:15], r.Size, r.MediaType, r.Origin, timeString(r.Created), timeString(r.LastAccess), r.Hits)
}

func timeString(t time.Time) string {
	if t.IsZero() {
		return "zero"
	}
	return fmt.Sprint(t.UnixNano())
}

func lruStrings(es []index.LRUEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, fmt.Sprintf("%s@%s size=%d origin=%q", e.Digest[7:15], timeString(e.LastAccess), e.Size, e.Origin))
	}
	return out
}

// dump reads everything the index holds, with every read method.
func (w *world) dump(t *testing.T, x index.Index) string {
	t.Helper()
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	res := func(v any, err error) string {
		if err != nil {
			return outcome(err)
		}
		return fmt.Sprint(v)
	}
	err := x.View(func(tx index.Txn) error {
		tx.EachBlob(func(r index.BlobRecord) error { p("blob %s", blobString(r)); return nil })
		for i := range 10 {
			d := dgN(i)
			r, err := tx.Blob(d)
			if err == nil {
				p("Blob %s", blobString(r))
			} else {
				p("Blob %d: %s", i, outcome(err))
			}
			p("BlobRepos %d: %s", i, res(tx.BlobRepos(d)))
			p("ManifestRepos %d: %s", i, res(tx.ManifestRepos(d)))
			p("Pinned %d: %s", i, res(tx.Pinned(d)))
			p("PinsOf %d: %s", i, res(tx.PinsOf(d)))
			for _, repo := range repos {
				p("BlobLinked %d %s: %s", i, repo, res(tx.BlobLinked(repo, d)))
				m, err := tx.Manifest(repo, d)
				if err == nil {
					p("Manifest %d %s: %s %d %q %v %v %s", i, repo, m.MediaType, m.Size, m.ArtifactType, m.Subject != nil && *m.Subject != "", m.Annotations, timeString(m.Created))
				} else {
					p("Manifest %d %s: %s", i, repo, outcome(err))
				}
				p("TagsFor %d %s: %s", i, repo, res(tx.TagsFor(repo, d)))
				refs, err := tx.Referrers(repo, d)
				p("Referrers %d %s: %v %s", i, repo, refs, outcome(err))
			}
		}
		tx.EachLink(func(repo string, d oci.Digest) error { p("link %s %s", repo, d[7:15]); return nil })
		tx.EachManifest("", func(repo string, m index.ManifestRecord) error { p("manifest %s %s", repo, m.Digest[7:15]); return nil })
		tx.EachManifest("a", func(repo string, m index.ManifestRecord) error {
			p("manifest of a: %s %s", repo, m.Digest[7:15])
			return nil
		})
		for _, repo := range repos {
			p("Tags %s: %s", repo, res(tx.Tags(repo, -1, "")))
			p("Tags %s 2 after v1: %s", repo, res(tx.Tags(repo, 2, "v1")))
			for _, tag := range tags {
				p("Tag %s:%s: %s", repo, tag, res(tx.Tag(repo, tag)))
				at, err := tx.TagChecked(repo, tag)
				p("TagChecked %s:%s: %s %s", repo, tag, timeString(at), outcome(err))
			}
		}
		p("Repositories: %s", res(tx.Repositories(-1, "")))
		p("Repositories 2 after a: %s", res(tx.Repositories(2, "a")))
		tx.EachUpload(func(r index.UploadRecord) error {
			p("upload %s %s %s", r.ID, r.Repo, timeString(r.Started))
			return nil
		})
		for _, id := range []string{"up0", "up1"} {
			r, err := tx.Upload(id)
			p("Upload %s: %s %s %s", id, r.Repo, timeString(r.Started), outcome(err))
		}
		usages, err := tx.Usages()
		origins := slices.Sorted(func(yield func(string) bool) {
			for o := range usages {
				if !yield(o) {
					return
				}
			}
		})
		for _, o := range origins {
			p("Usages %s: %+v", o, usages[o])
		}
		p("Usages: %s", outcome(err))
		for _, o := range []string{"", "hosted", "hub"} {
			p("Usage %q: %s", o, res(tx.Usage(o)))
		}
		tx.EachLeastRecent(time.Time{}, func(d oci.Digest, at time.Time) (bool, error) {
			p("lru %s %s", d[7:15], timeString(at))
			return true, nil
		})
		tx.EachLeastRecent(base.Add(15*time.Minute), func(d oci.Digest, at time.Time) (bool, error) {
			p("lru before 15 %s", d[7:15])
			return true, nil
		})
		var c index.LRUCursor
		for {
			var win []index.LRUEntry
			tx.EachLeastRecentAfter(&c, time.Time{}, func(e index.LRUEntry) (bool, error) {
				win = append(win, e)
				return len(win) < 2, nil
			})
			if len(win) == 0 {
				break
			}
			p("window %v", lruStrings(win))
		}
		pins, err := tx.PinRules()
		for i := range 10 {
			if r, ok := pins[dgN(i)]; ok {
				p("PinRules %d: %v", i, r)
			}
		}
		p("PinRules: %d %s", len(pins), outcome(err))
		p("CountEntries: %s", res(tx.CountEntries()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
