// Package indextest is the behaviour every index.Index implementation
// shares: Run checks one (Badger in cache/index, PostgreSQL in
// cache/index/pgindex) against the same cases, so hosted, cache,
// eviction and GC code can run on either without knowing which.
package indextest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wharf-registry/wharf/cache/index"
	"github.com/wharf-registry/wharf/oci"
)

// Opener opens an empty index for one test; the implementation's own
// test closes it (t.Cleanup).
type Opener func(t *testing.T) index.Index

// Run runs every case against indexes from open, each on a fresh one.
func Run(t *testing.T, open Opener) {
	for _, c := range []struct {
		name string
		fn   func(t *testing.T, open Opener)
	}{
		{"Blobs", testBlobs},
		{"Links", testLinks},
		{"ManifestsAndTags", testManifestsAndTags},
		{"TagsPagination", testTagsPagination},
		{"Repositories", testRepositories},
		{"Uploads", testUploads},
		{"UpdateErrorDiscardsChanges", testUpdateErrorDiscardsChanges},
		{"UpdateRetriesOnConflict", testUpdateRetriesOnConflict},
		{"UpdateConcurrent", testUpdateConcurrent},
		{"EachLeastRecentAfter", testEachLeastRecentAfter},
		{"DeleteBlobs", testDeleteBlobs},
		{"EvictBlobs", testEvictBlobs},
		{"EvictAfterChanges", testEvictAfterChanges},
		{"EvictBatches", testEvictBatches},
		{"ErrorsSayWhatFailed", testErrorsSayWhatFailed},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, open) })
	}
}

// Update runs fn in x.Update and fails the test on an error: a helper
// the implementations' own tests share.
func Update(t *testing.T, x index.Index, fn func(index.Txn) error) {
	t.Helper()
	if err := x.Update(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

// View runs fn in x.View and fails the test on an error.
func View(t *testing.T, x index.Index, fn func(index.Txn) error) {
	t.Helper()
	if err := x.View(fn); err != nil {
		t.Fatal(err)
	}
}

// Digest is the i-th test blob's digest.
func Digest(i int) oci.Digest { return oci.FromBytes([]byte(fmt.Sprint("blob ", i))) }

var (
	update = Update
	view   = View
	dg     = Digest
)

// when is a fixed UTC time: records go through JSON, so compare with Equal.
var when = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func testBlobs(t *testing.T, open Opener) {
	x := open(t)
	recs := []index.BlobRecord{
		{Digest: dg(1), Size: 10, MediaType: "a/b", Created: when, LastAccess: when.Add(time.Hour), Origin: "hosted"},
		{Digest: dg(2), Size: 20, Created: when, LastAccess: when, Origin: "docker.io"},
		{Digest: oci.FromBytesAlg("sha512", []byte("x")), Size: 1, Created: when, LastAccess: when},
	}
	view(t, x, func(tx index.Txn) error {
		if _, err := tx.Blob(dg(1)); !errors.Is(err, index.ErrNotFound) {
			t.Errorf("Blob(missing) = %v, want ErrNotFound", err)
		}
		return nil
	})
	update(t, x, func(tx index.Txn) error {
		for _, r := range recs {
			if err := tx.PutBlob(r); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, x, func(tx index.Txn) error {
		for _, want := range recs {
			got := must[index.BlobRecord](t)(tx.Blob(want.Digest))
			if got.Digest != want.Digest || got.Size != want.Size || got.MediaType != want.MediaType ||
				got.Origin != want.Origin || !got.Created.Equal(want.Created) || !got.LastAccess.Equal(want.LastAccess) {
				t.Errorf("Blob = %+v, want %+v", got, want)
			}
		}
		seen := map[oci.Digest]bool{}
		if err := tx.EachBlob(func(r index.BlobRecord) error { seen[r.Digest] = true; return nil }); err != nil {
			t.Fatal(err)
		}
		if len(seen) != len(recs) {
			t.Errorf("EachBlob saw %d records, want %d", len(seen), len(recs))
		}
		stop := errors.New("stop")
		n := 0
		if err := tx.EachBlob(func(index.BlobRecord) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
			t.Errorf("EachBlob with failing callback: %v after %d", err, n)
		}
		return nil
	})
	// Overwrite, then delete.
	update(t, x, func(tx index.Txn) error {
		r := recs[0]
		r.Size = 11
		return tx.PutBlob(r)
	})
	update(t, x, func(tx index.Txn) error {
		if r := must[index.BlobRecord](t)(tx.Blob(dg(1))); r.Size != 11 {
			t.Errorf("overwritten size = %d", r.Size)
		}
		if err := tx.DeleteBlob(dg(2)); err != nil {
			return err
		}
		return tx.DeleteBlob(dg(99)) // missing: not an error
	})
	view(t, x, func(tx index.Txn) error {
		if _, err := tx.Blob(dg(2)); !errors.Is(err, index.ErrNotFound) {
			t.Errorf("deleted blob: %v", err)
		}
		return nil
	})
}

func testLinks(t *testing.T, open Opener) {
	x := open(t)
	d1, d2 := dg(1), dg(2)
	update(t, x, func(tx index.Txn) error {
		tx.PutBlob(index.BlobRecord{Digest: d1, Size: 1})
		tx.PutBlob(index.BlobRecord{Digest: d2, Size: 2})
		for _, l := range []struct {
			repo string
			d    oci.Digest
		}{{"a", d1}, {"a/b", d1}, {"ab", d1}, {"a", d2}, {"a", d1}} {
			if err := tx.LinkBlob(l.repo, l.d); err != nil {
				return err
			}
		}
		return nil
	})
	linked := func(tx index.Txn, repo string, d oci.Digest) bool {
		return must[bool](t)(tx.BlobLinked(repo, d))
	}
	view(t, x, func(tx index.Txn) error {
		for _, c := range []struct {
			repo string
			d    oci.Digest
			want bool
		}{{"a", d1, true}, {"a/b", d1, true}, {"ab", d1, true}, {"a", d2, true}, {"a/b", d2, false}, {"b", d1, false}, {"", d1, false}} {
			if got := linked(tx, c.repo, c.d); got != c.want {
				t.Errorf("BlobLinked(%q, %s) = %v", c.repo, c.d, got)
			}
		}
		if r := must[[]string](t)(tx.BlobRepos(d1)); !reflect.DeepEqual(r, []string{"a", "a/b", "ab"}) {
			t.Errorf("BlobRepos(d1) = %v", r)
		}
		if r := must[[]string](t)(tx.BlobRepos(d2)); !reflect.DeepEqual(r, []string{"a"}) {
			t.Errorf("BlobRepos(d2) = %v", r)
		}
		if r := must[[]string](t)(tx.BlobRepos(dg(3))); len(r) != 0 {
			t.Errorf("BlobRepos(unknown) = %v", r)
		}
		return nil
	})
	update(t, x, func(tx index.Txn) error { return tx.UnlinkBlob("a/b", d1) })
	view(t, x, func(tx index.Txn) error {
		if linked(tx, "a/b", d1) || !linked(tx, "a", d1) {
			t.Error("UnlinkBlob touched the wrong link")
		}
		if r := must[[]string](t)(tx.BlobRepos(d1)); !reflect.DeepEqual(r, []string{"a", "ab"}) {
			t.Errorf("BlobRepos after unlink = %v", r)
		}
		return nil
	})
	update(t, x, func(tx index.Txn) error { return tx.DeleteBlob(d1) })
	view(t, x, func(tx index.Txn) error {
		if linked(tx, "a", d1) || linked(tx, "ab", d1) {
			t.Error("DeleteBlob left links behind")
		}
		if r := must[[]string](t)(tx.BlobRepos(d1)); len(r) != 0 {
			t.Errorf("BlobRepos after DeleteBlob = %v", r)
		}
		if !linked(tx, "a", d2) {
			t.Error("DeleteBlob(d1) removed d2's link")
		}
		return nil
	})
}

func manifest(d oci.Digest, subject *oci.Digest) index.ManifestRecord {
	return index.ManifestRecord{Digest: d, MediaType: oci.MediaTypeOCIManifest, Size: 123, Subject: subject,
		ArtifactType: "application/x", Annotations: map[string]string{"k": "v"}, Created: when}
}

func testManifestsAndTags(t *testing.T, open Opener) {
	x := open(t)
	img, other, sig, sig2 := dg(1), dg(2), dg(3), dg(4)
	update(t, x, func(tx index.Txn) error {
		for _, m := range []struct {
			repo string
			r    index.ManifestRecord
		}{
			{"app", manifest(img, nil)}, {"app", manifest(other, nil)},
			{"app", manifest(sig, &img)}, {"app", manifest(sig2, &img)},
			{"app/sub", manifest(img, nil)}, {"apple", manifest(img, nil)},
		} {
			if err := tx.PutManifest(m.repo, m.r); err != nil {
				return err
			}
		}
		tx.AddReferrer("app", img, oci.Descriptor{MediaType: oci.MediaTypeOCIManifest, Digest: sig, Size: 123, ArtifactType: "application/x"})
		tx.AddReferrer("app", img, oci.Descriptor{MediaType: oci.MediaTypeOCIManifest, Digest: sig2, Size: 123})
		for _, tag := range []string{"latest", "v1", "stable"} {
			tx.SetTag("app", tag, img)
		}
		tx.SetTag("app", "old", other)
		tx.SetTag("app/sub", "latest", img)
		return nil
	})
	view(t, x, func(tx index.Txn) error {
		got := must[index.ManifestRecord](t)(tx.Manifest("app", sig))
		if got.Subject == nil || *got.Subject != img || got.Annotations["k"] != "v" || got.Size != 123 ||
			got.MediaType != oci.MediaTypeOCIManifest || got.ArtifactType != "application/x" || !got.Created.Equal(when) {
			t.Errorf("Manifest = %+v", got)
		}
		if _, err := tx.Manifest("other", img); !errors.Is(err, index.ErrNotFound) {
			t.Errorf("Manifest in another repo: %v", err)
		}
		var n int
		tx.EachManifest("app", func(repo string, r index.ManifestRecord) error {
			if repo != "app" {
				t.Errorf("EachManifest(app) visited %s", repo)
			}
			n++
			return nil
		})
		if n != 4 {
			t.Errorf("EachManifest(app) saw %d, want 4", n)
		}
		all := map[string]int{}
		tx.EachManifest("", func(repo string, r index.ManifestRecord) error { all[repo]++; return nil })
		if !reflect.DeepEqual(all, map[string]int{"app": 4, "app/sub": 1, "apple": 1}) {
			t.Errorf("EachManifest(\"\") = %v", all)
		}
		if d := must[oci.Digest](t)(tx.Tag("app", "old")); d != other {
			t.Errorf("Tag(old) = %s", d)
		}
		if _, err := tx.Tag("app", "missing"); !errors.Is(err, index.ErrNotFound) {
			t.Errorf("Tag(missing) = %v", err)
		}
		if _, err := tx.Tag("apple", "latest"); !errors.Is(err, index.ErrNotFound) {
			t.Errorf("tag leaked across repos: %v", err)
		}
		if tags := must[[]string](t)(tx.TagsFor("app", img)); !reflect.DeepEqual(tags, []string{"latest", "stable", "v1"}) {
			t.Errorf("TagsFor(img) = %v", tags)
		}
		if tags := must[[]string](t)(tx.TagsFor("app", sig)); len(tags) != 0 {
			t.Errorf("TagsFor(sig) = %v", tags)
		}
		refs := must[[]oci.Descriptor](t)(tx.Referrers("app", img))
		if len(refs) != 2 || refs[0].Digest != sig || refs[0].ArtifactType != "application/x" || refs[1].Digest != sig2 {
			t.Errorf("Referrers = %+v", refs)
		}
		if refs := must[[]oci.Descriptor](t)(tx.Referrers("app/sub", img)); len(refs) != 0 {
			t.Errorf("Referrers leaked across repos: %+v", refs)
		}
		return nil
	})

	// Deleting a referrer removes its referrer entry only.
	update(t, x, func(tx index.Txn) error { return tx.DeleteManifest("app", sig) })
	view(t, x, func(tx index.Txn) error {
		refs := must[[]oci.Descriptor](t)(tx.Referrers("app", img))
		if len(refs) != 1 || refs[0].Digest != sig2 {
			t.Errorf("Referrers after deleting sig = %+v", refs)
		}
		return nil
	})
	// Deleting the image removes its tags, and nothing of other repos.
	update(t, x, func(tx index.Txn) error { return tx.DeleteManifest("app", img) })
	view(t, x, func(tx index.Txn) error {
		if _, err := tx.Manifest("app", img); !errors.Is(err, index.ErrNotFound) {
			t.Errorf("deleted manifest: %v", err)
		}
		if tags := must[[]string](t)(tx.Tags("app", -1, "")); !reflect.DeepEqual(tags, []string{"old"}) {
			t.Errorf("tags after delete = %v", tags)
		}
		if _, err := tx.Manifest("app/sub", img); err != nil {
			t.Errorf("app/sub lost its manifest: %v", err)
		}
		if d, err := tx.Tag("app/sub", "latest"); err != nil || d != img {
			t.Errorf("app/sub lost its tag: %v", err)
		}
		return nil
	})
	err := x.Update(context.Background(), func(tx index.Txn) error { return tx.DeleteManifest("app", img) })
	if !errors.Is(err, index.ErrNotFound) {
		t.Errorf("deleting a missing manifest = %v", err)
	}
	update(t, x, func(tx index.Txn) error { return tx.DeleteTag("app", "old") })
	view(t, x, func(tx index.Txn) error {
		if _, err := tx.Tag("app", "old"); !errors.Is(err, index.ErrNotFound) {
			t.Errorf("DeleteTag: %v", err)
		}
		return nil
	})
}

func testTagsPagination(t *testing.T, open Opener) {
	x := open(t)
	tags := []string{"v2", "latest", "v10", "A", "v1", "_x", "1.0", "v1.1", "latest-rc"}
	update(t, x, func(tx index.Txn) error {
		for i, tag := range tags {
			tx.SetTag("repo", tag, dg(i))
		}
		tx.SetTag("repo/sub", "zzz", dg(0))
		tx.SetTag("repo-x", "aaa", dg(0))
		tx.SetTag("rep", "mmm", dg(0))
		return nil
	})
	sorted := []string{"1.0", "A", "_x", "latest", "latest-rc", "v1", "v1.1", "v10", "v2"}
	tests := []struct {
		n    int
		last string
		want []string
	}{
		{-1, "", sorted},
		{100, "", sorted},
		{0, "", nil},
		{1, "", sorted[:1]},
		{3, "", sorted[:3]},
		{3, "_x", sorted[3:6]},
		{3, "v1.1", sorted[7:]},
		{-1, "latest", sorted[4:]},
		{-1, "v2", nil},
		{-1, "zzz", nil},
		{2, "b", sorted[3:5]}, // last need not be a tag
		{-1, "0", sorted},
	}
	view(t, x, func(tx index.Txn) error {
		for _, tt := range tests {
			got := must[[]string](t)(tx.Tags("repo", tt.n, tt.last))
			if len(got) != len(tt.want) || (len(got) > 0 && !reflect.DeepEqual(got, tt.want)) {
				t.Errorf("Tags(n=%d, last=%q) = %v, want %v", tt.n, tt.last, got, tt.want)
			}
		}
		// Walking pages of 2 visits every tag once.
		var all []string
		last := ""
		for {
			page := must[[]string](t)(tx.Tags("repo", 2, last))
			if len(page) == 0 {
				break
			}
			all = append(all, page...)
			last = page[len(page)-1]
		}
		if !reflect.DeepEqual(all, sorted) {
			t.Errorf("paged walk = %v", all)
		}
		if got := must[[]string](t)(tx.Tags("nope", -1, "")); len(got) != 0 {
			t.Errorf("Tags(unknown repo) = %v", got)
		}
		return nil
	})
}

func testRepositories(t *testing.T, open Opener) {
	x := open(t)
	update(t, x, func(tx index.Txn) error {
		for i, repo := range []string{"b", "ab", "a/b", "a", "a-b", "a.b", "a/b/c", "a", "ab", "c_d"} {
			if err := tx.PutManifest(repo, manifest(dg(i), nil)); err != nil {
				return err
			}
		}
		tx.SetTag("tagonly", "x", dg(0)) // tags alone do not make a repository
		tx.LinkBlob("blobonly", dg(0))
		return nil
	})
	sorted := []string{"a", "a-b", "a.b", "a/b", "a/b/c", "ab", "b", "c_d"}
	tests := []struct {
		n    int
		last string
		want []string
	}{
		{-1, "", sorted},
		{0, "", nil},
		{2, "", sorted[:2]},
		{2, "a.b", sorted[3:5]},
		{-1, "a", sorted[1:]},
		{-1, "a/b", sorted[4:]},
		{3, "a/b/c", sorted[5:8]},
		{-1, "aa", sorted[5:]},
		{-1, "c_d", nil},
		{-1, "zzz", nil},
	}
	view(t, x, func(tx index.Txn) error {
		for _, tt := range tests {
			got := must[[]string](t)(tx.Repositories(tt.n, tt.last))
			if len(got) != len(tt.want) || (len(got) > 0 && !reflect.DeepEqual(got, tt.want)) {
				t.Errorf("Repositories(n=%d, last=%q) = %v, want %v", tt.n, tt.last, got, tt.want)
			}
		}
		var all []string
		last := ""
		for {
			page := must[[]string](t)(tx.Repositories(3, last))
			if len(page) == 0 {
				break
			}
			all = append(all, page...)
			last = page[len(page)-1]
		}
		if !reflect.DeepEqual(all, sorted) {
			t.Errorf("paged walk = %v", all)
		}
		return nil
	})
}

func testUploads(t *testing.T, open Opener) {
	x := open(t)
	recs := []index.UploadRecord{
		{ID: "0123456789abcdef", Repo: "team/app", Started: when},
		{ID: "fedcba9876543210", Repo: "other", Started: when.Add(time.Minute), Owner: "replica-a"},
	}
	update(t, x, func(tx index.Txn) error {
		for _, r := range recs {
			if err := tx.PutUpload(r); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, x, func(tx index.Txn) error {
		got := must[index.UploadRecord](t)(tx.Upload(recs[0].ID))
		if got.ID != recs[0].ID || got.Repo != "team/app" || !got.Started.Equal(when) || got.Owner != "" {
			t.Errorf("Upload = %+v", got)
		}
		if got := must[index.UploadRecord](t)(tx.Upload(recs[1].ID)); got.Owner != "replica-a" {
			t.Errorf("Upload = %+v, want the owner kept", got)
		}
		var ids, owners []string
		tx.EachUpload(func(r index.UploadRecord) error { ids, owners = append(ids, r.ID), append(owners, r.Owner); return nil })
		if !reflect.DeepEqual(ids, []string{recs[0].ID, recs[1].ID}) || !reflect.DeepEqual(owners, []string{"", "replica-a"}) {
			t.Errorf("EachUpload = %v, owners %v", ids, owners)
		}
		return nil
	})
	update(t, x, func(tx index.Txn) error { return tx.DeleteUpload(recs[0].ID) })
	view(t, x, func(tx index.Txn) error {
		if _, err := tx.Upload(recs[0].ID); !errors.Is(err, index.ErrNotFound) {
			t.Errorf("deleted upload: %v", err)
		}
		if _, err := tx.Upload(recs[1].ID); err != nil {
			t.Errorf("other upload: %v", err)
		}
		return nil
	})
}

func testUpdateErrorDiscardsChanges(t *testing.T, open Opener) {
	x := open(t)
	boom := errors.New("boom")
	err := x.Update(context.Background(), func(tx index.Txn) error {
		tx.SetTag("r", "t", dg(1))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v", err)
	}
	view(t, x, func(tx index.Txn) error {
		if _, err := tx.Tag("r", "t"); !errors.Is(err, index.ErrNotFound) {
			t.Errorf("a failed Update was committed: %v", err)
		}
		return nil
	})
	err = x.View(func(tx index.Txn) error { return tx.SetTag("r", "t", dg(1)) })
	if err == nil {
		t.Error("writing in View succeeded")
	}
}

// TestUpdateRetriesOnConflict makes a conflict happen for certain: the
// first attempt reads a record, another transaction commits a change to
// it, then the first attempt writes and must be retried.
func testUpdateRetriesOnConflict(t *testing.T, open Opener) {
	x := open(t)
	d := dg(1)
	update(t, x, func(tx index.Txn) error { return tx.PutBlob(index.BlobRecord{Digest: d, Size: 0}) })
	var attempts atomic.Int32
	err := x.Update(context.Background(), func(tx index.Txn) error {
		r, err := tx.Blob(d)
		if err != nil {
			return err
		}
		if attempts.Add(1) == 1 {
			update(t, x, func(tx index.Txn) error {
				r, err := tx.Blob(d)
				if err != nil {
					return err
				}
				r.Size += 10
				return tx.PutBlob(r)
			})
		}
		r.Size++
		return tx.PutBlob(r)
	})
	if err != nil {
		t.Fatal(err)
	}
	if attempts.Load() != 2 {
		t.Errorf("%d attempts, want 2", attempts.Load())
	}
	view(t, x, func(tx index.Txn) error {
		if r := must[index.BlobRecord](t)(tx.Blob(d)); r.Size != 11 {
			t.Errorf("size = %d, want 11: an update was lost", r.Size)
		}
		return nil
	})

	// A cancelled context stops the retrying.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var first atomic.Bool
	err = x.Update(ctx, func(tx index.Txn) error {
		r, _ := tx.Blob(d)
		if !first.Swap(true) {
			update(t, x, func(tx index.Txn) error { return tx.PutBlob(index.BlobRecord{Digest: d, Size: 100}) })
		}
		r.Size++
		return tx.PutBlob(r)
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Update with a cancelled context after a conflict = %v", err)
	}
}

func testUpdateConcurrent(t *testing.T, open Opener) {
	x := open(t)
	d := dg(1)
	update(t, x, func(tx index.Txn) error { return tx.PutBlob(index.BlobRecord{Digest: d}) })
	const workers, each = 4, 25
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				err := x.Update(context.Background(), func(tx index.Txn) error {
					r, err := tx.Blob(d)
					if err != nil {
						return err
					}
					r.Size++
					return tx.PutBlob(r)
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	view(t, x, func(tx index.Txn) error {
		if r := must[index.BlobRecord](t)(tx.Blob(d)); r.Size != workers*each {
			t.Errorf("counter = %d, want %d", r.Size, workers*each)
		}
		return nil
	})
}

// putCached records n proxied blobs of origin "hub", blob i read at
// when+i minutes with size 10+i, each linked in repos repositories.
func putCached(t *testing.T, x index.Index, from, n, repos int) []oci.Digest {
	t.Helper()
	var ds []oci.Digest
	for lo := from; lo < from+n; lo += 200 {
		update(t, x, func(tx index.Txn) error {
			for i := lo; i < min(lo+200, from+n); i++ {
				r := cachedRecord(i)
				if err := tx.PutBlob(r); err != nil {
					return err
				}
				for k := range repos {
					if err := tx.LinkBlob(fmt.Sprintf("hub/lib/r%d", (i+k)%97), r.Digest); err != nil {
						return err
					}
				}
			}
			return nil
		})
	}
	for i := from; i < from+n; i++ {
		ds = append(ds, dg(i))
	}
	return ds
}

func cachedRecord(i int) index.BlobRecord {
	return index.BlobRecord{Digest: dg(i), Size: int64(10 + i), Created: when, LastAccess: when.Add(time.Duration(i) * time.Minute), Origin: "hub"}
}

func lruOrder(t *testing.T, x index.Index) []oci.Digest {
	t.Helper()
	var out []oci.Digest
	view(t, x, func(tx index.Txn) error {
		return tx.EachLeastRecent(time.Time{}, func(d oci.Digest, _ time.Time) (bool, error) {
			out = append(out, d)
			return true, nil
		})
	})
	return out
}

func usageOf(t *testing.T, x index.Index, origin string) index.Usage {
	t.Helper()
	var u index.Usage
	view(t, x, func(tx index.Txn) error { var err error; u, err = tx.Usage(origin); return err })
	return u
}

func testEachLeastRecentAfter(t *testing.T, open Opener) {
	x := open(t)
	putCached(t, x, 0, 10, 1)
	update(t, x, func(tx index.Txn) error { // not evictable: no LRU entry
		return tx.PutBlob(index.BlobRecord{Digest: dg(100), Size: 1, LastAccess: when, Origin: index.OriginHosted})
	})
	window := func(c *index.LRUCursor, before time.Time, n int) []index.LRUEntry {
		var out []index.LRUEntry
		view(t, x, func(tx index.Txn) error {
			return tx.EachLeastRecentAfter(c, before, func(e index.LRUEntry) (bool, error) {
				out = append(out, e)
				return len(out) < n, nil
			})
		})
		return out
	}
	var c index.LRUCursor
	first := window(&c, time.Time{}, 3)
	for i, e := range first {
		if r := cachedRecord(i); e.Digest != r.Digest || !e.LastAccess.Equal(r.LastAccess) || e.Size != r.Size || e.Origin != "hub" {
			t.Errorf("entry %d = %+v, want %+v", i, e, r)
		}
	}
	// Removing what was visited does not move the cursor; blob 4 read
	// again moves behind the others and is visited there.
	update(t, x, func(tx index.Txn) error {
		for _, e := range first {
			if err := tx.DeleteBlob(e.Digest); err != nil {
				return err
			}
		}
		return tx.Touch(dg(4), when.Add(time.Hour), 1)
	})
	var rest []oci.Digest
	for {
		w := window(&c, time.Time{}, 2)
		if len(w) == 0 {
			break
		}
		for _, e := range w {
			rest = append(rest, e.Digest)
		}
	}
	if want := []oci.Digest{dg(3), dg(5), dg(6), dg(7), dg(8), dg(9), dg(4)}; !slices.Equal(rest, want) {
		t.Errorf("resumed windows visited %v, want %v", rest, want)
	}

	// A limit stops the walk before the first entry at or after it, and
	// the cursor stays before that entry.
	var c2 index.LRUCursor
	if w := window(&c2, when.Add(5*time.Minute), 100); len(w) != 1 || w[0].Digest != dg(3) {
		t.Errorf("entries before minute 5: %v", w)
	}
	if w := window(&c2, time.Time{}, 1); len(w) != 1 || w[0].Digest != dg(5) {
		t.Errorf("after the limit, the walk resumed at %v, want %s", w, dg(5))
	}
}

func testDeleteBlobs(t *testing.T, open Opener) {
	x := open(t)
	ctx := context.Background()
	ds := putCached(t, x, 0, 6, 2)
	update(t, x, func(tx index.Txn) error {
		if err := tx.PutBlob(index.BlobRecord{Digest: dg(50), Size: 7, Origin: index.OriginHosted}); err != nil {
			return err
		}
		return tx.LinkBlob("orphan", dg(60)) // a link without a record
	})
	gone, err := x.DeleteBlobs(ctx, []oci.Digest{ds[1], ds[3], dg(50), dg(60), ds[1], dg(70)})
	if err != nil {
		t.Fatal(err)
	}
	var got []oci.Digest
	for _, r := range gone {
		got = append(got, r.Digest)
	}
	slices.Sort(got)
	want := []oci.Digest{ds[1], ds[3], dg(50)}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("DeleteBlobs removed %v, want %v", got, want)
	}
	if u := usageOf(t, x, "hub"); u.Count != 4 || u.Bytes != 10+12+14+15 {
		t.Errorf("hub usage = %+v", u)
	}
	if u := usageOf(t, x, index.OriginHosted); u.Count != 0 || u.Bytes != 0 {
		t.Errorf("hosted usage = %+v", u)
	}
	if order := lruOrder(t, x); !slices.Equal(order, []oci.Digest{ds[0], ds[2], ds[4], ds[5]}) {
		t.Errorf("LRU order after DeleteBlobs = %v", order)
	}
	view(t, x, func(tx index.Txn) error {
		for _, d := range []oci.Digest{ds[1], ds[3], dg(60)} {
			if repos, _ := tx.BlobRepos(d); len(repos) != 0 {
				t.Errorf("%s still linked in %v", d, repos)
			}
		}
		links := 0
		tx.EachLink(func(string, oci.Digest) error { links++; return nil })
		if links != 8 {
			t.Errorf("%d links left, want 8", links)
		}
		return nil
	})
}

// EvictBlobs keeps what may not go and removes the rest with everything
// that hangs off it.
func testEvictBlobs(t *testing.T, open Opener) {
	x := open(t)
	ctx := context.Background()
	putCached(t, x, 0, 8, 1)
	subject := dg(7)
	update(t, x, func(tx index.Txn) error {
		// Blob 2 is a manifest in two repositories, tagged in one, and
		// refers to blob 7; another tag of the repository stays.
		for _, repo := range []string{"hub/a", "hub/b"} {
			if err := tx.LinkBlob(repo, dg(2)); err != nil {
				return err
			}
			if err := tx.PutManifest(repo, index.ManifestRecord{Digest: dg(2), MediaType: oci.MediaTypeOCIManifest, Subject: &subject}); err != nil {
				return err
			}
			if err := tx.AddReferrer(repo, subject, oci.Descriptor{Digest: dg(2), MediaType: oci.MediaTypeOCIManifest}); err != nil {
				return err
			}
		}
		if err := tx.SetTag("hub/a", "latest", dg(2)); err != nil {
			return err
		}
		if err := tx.SetTag("hub/a", "old", dg(5)); err != nil {
			return err
		}
		// Blob 3 is pinned; blob 20 is hosted.
		if err := tx.Pin(dg(3), "hub/keep:*"); err != nil {
			return err
		}
		return tx.PutBlob(index.BlobRecord{Digest: dg(20), Size: 1, Origin: index.OriginHosted, LastAccess: when})
	})
	var cands []index.LRUEntry
	var c index.LRUCursor
	view(t, x, func(tx index.Txn) error {
		return tx.EachLeastRecentAfter(&c, time.Time{}, func(e index.LRUEntry) (bool, error) {
			cands = append(cands, e)
			return len(cands) < 6, nil
		})
	})
	// Blob 1 is read after it was chosen.
	update(t, x, func(tx index.Txn) error { return tx.Touch(dg(1), when.Add(time.Hour), 1) })
	cands = append(cands, index.LRUEntry{Digest: dg(20)}, index.LRUEntry{Digest: dg(404)}, cands[0])
	gone, err := x.EvictBlobs(ctx, cands, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var got []oci.Digest
	var bytes int64
	for _, e := range gone {
		got = append(got, e.Digest)
		bytes += e.Size
		if e.Origin != "hub" {
			t.Errorf("evicted %s of origin %q", e.Digest, e.Origin)
		}
	}
	if want := []oci.Digest{dg(0), dg(2), dg(4), dg(5)}; !slices.Equal(got, want) {
		t.Errorf("evicted %v, want %v", got, want)
	}
	if u := usageOf(t, x, "hub"); u.Count != 4 || u.Bytes != (10+11+12+13+14+15+16+17)-bytes {
		t.Errorf("usage after eviction = %+v (evicted %d bytes)", u, bytes)
	}
	if order := lruOrder(t, x); !slices.Equal(order, []oci.Digest{dg(3), dg(6), dg(7), dg(1)}) {
		t.Errorf("LRU order after eviction = %v", order)
	}
	view(t, x, func(tx index.Txn) error {
		for _, d := range got {
			if _, err := tx.Blob(d); !errors.Is(err, index.ErrNotFound) {
				t.Errorf("record of evicted %s: %v", d, err)
			}
			if repos, _ := tx.BlobRepos(d); len(repos) != 0 {
				t.Errorf("evicted %s still linked in %v", d, repos)
			}
		}
		for _, repo := range []string{"hub/a", "hub/b"} {
			if _, err := tx.Manifest(repo, dg(2)); !errors.Is(err, index.ErrNotFound) {
				t.Errorf("manifest of evicted blob left in %s: %v", repo, err)
			}
			if refs, _ := tx.Referrers(repo, subject); len(refs) != 0 {
				t.Errorf("referrers of %s in %s: %v", subject, repo, refs)
			}
		}
		if _, err := tx.Tag("hub/a", "latest"); !errors.Is(err, index.ErrNotFound) {
			t.Errorf("tag of the evicted manifest: %v", err)
		}
		if d, err := tx.Tag("hub/a", "old"); err != nil || d != dg(5) {
			t.Errorf("other tag: %s %v", d, err)
		}
		for _, d := range []oci.Digest{dg(1), dg(3), dg(20)} {
			if _, err := tx.Blob(d); err != nil {
				t.Errorf("%s should have been kept: %v", d, err)
			}
		}
		return nil
	})

	// A limit keeps what was read at or after it, and a candidate without
	// a LastAccess is taken as it is now.
	gone, err = x.EvictBlobs(ctx, []index.LRUEntry{{Digest: dg(6)}, {Digest: dg(7)}}, when.Add(7*time.Minute))
	if err != nil || len(gone) != 1 || gone[0].Digest != dg(6) || gone[0].Size != 16 {
		t.Errorf("EvictBlobs before minute 7 = %+v, %v", gone, err)
	}
}

// Evict checks again what a writer may have changed since the plan.
func testEvictAfterChanges(t *testing.T, open Opener) {
	x := open(t)
	ctx := context.Background()
	putCached(t, x, 0, 5, 1)
	var cands []index.LRUEntry
	var c index.LRUCursor
	view(t, x, func(tx index.Txn) error {
		return tx.EachLeastRecentAfter(&c, time.Time{}, func(e index.LRUEntry) (bool, error) {
			cands = append(cands, e)
			return true, nil
		})
	})
	plan, err := x.PlanEviction(cands, time.Time{})
	if err != nil || len(plan) != 5 {
		t.Fatalf("PlanEviction = %d plans, %v", len(plan), err)
	}
	update(t, x, func(tx index.Txn) error {
		if err := tx.Touch(dg(0), when.Add(time.Hour), 1); err != nil { // read
			return err
		}
		if err := tx.Pin(dg(1), "rule"); err != nil { // pinned
			return err
		}
		r := cachedRecord(2) // pushed to a hosted repository
		r.Origin = index.OriginHosted
		if err := tx.PutBlob(r); err != nil {
			return err
		}
		r = cachedRecord(3) // fetched again, at the same time but a new size
		r.Size = 1000
		return tx.PutBlob(r)
	})
	gone, err := x.Evict(ctx, plan)
	if err != nil {
		t.Fatal(err)
	}
	if len(gone) != 2 || gone[0].Digest != dg(3) || gone[0].Size != 1000 || gone[1].Digest != dg(4) {
		t.Errorf("evicted %+v, want %s (1000 bytes) and %s", gone, dg(3), dg(4))
	}
	if u := usageOf(t, x, "hub"); u.Count != 2 || u.Bytes != 10+11 {
		t.Errorf("hub usage = %+v", u)
	}
}

// Windows sparse and dense in the key space, and one with so many links
// per blob that a full batch is too big for one transaction (it is split):
// every evicted blob loses exactly its own keys.
func testEvictBatches(t *testing.T, open Opener) {
	x := open(t)
	ctx := context.Background()
	const n, repos = index.MaxEvictBatch + 6, 13
	ds := putCached(t, x, 0, n, repos)
	var sparse []index.LRUEntry
	for i := 0; i < n; i += 97 {
		sparse = append(sparse, index.LRUEntry{Digest: ds[i]})
	}
	gone, err := x.EvictBlobs(ctx, sparse, time.Time{})
	if err != nil || len(gone) != len(sparse) {
		t.Fatalf("sparse: evicted %d of %d: %v", len(gone), len(sparse), err)
	}
	var all []index.LRUEntry
	var c index.LRUCursor
	view(t, x, func(tx index.Txn) error {
		return tx.EachLeastRecentAfter(&c, time.Time{}, func(e index.LRUEntry) (bool, error) {
			all = append(all, e)
			return true, nil
		})
	})
	dense := all[:len(all)-5] // all but the five most recent
	gone, err = x.EvictBlobs(ctx, dense, time.Time{})
	if err != nil || len(gone) != len(dense) {
		t.Fatalf("dense: evicted %d of %d: %v", len(gone), len(dense), err)
	}
	kept := map[oci.Digest]bool{}
	for _, e := range all[len(all)-5:] {
		kept[e.Digest] = true
	}
	view(t, x, func(tx index.Txn) error {
		links := 0
		err := tx.EachLink(func(repo string, d oci.Digest) error {
			links++
			if !kept[d] {
				t.Errorf("link of evicted %s left in %s", d, repo)
			}
			return nil
		})
		if links != 5*repos {
			t.Errorf("%d links left, want %d", links, 5*repos)
		}
		counts, _ := tx.CountEntries()
		if counts["blob"] != 5 {
			t.Errorf("%d records left, want 5", counts["blob"])
		}
		return err
	})
	if u := usageOf(t, x, "hub"); u.Count != 5 {
		t.Errorf("usage = %+v, want 5 blobs", u)
	}
}

// testErrorsSayWhatFailed: a failed operation says what it was and on
// which records, once, and keeps the cause for errors.Is (here a write
// in View's read-only transaction, which leaves it usable); a missing
// record is the bare ErrNotFound.
func testErrorsSayWhatFailed(t *testing.T, open Opener) {
	x := open(t)
	d := Digest(7)
	tests := []struct {
		name string
		op   func(tx index.Txn) error
		want string
	}{
		{"link", func(tx index.Txn) error { return tx.LinkBlob("team/app", d) }, "index: link " + string(d) + " into team/app: "},
		{"unlink", func(tx index.Txn) error { return tx.UnlinkBlob("team/app", d) }, "index: unlink " + string(d) + " from team/app: "},
		{"put blob", func(tx index.Txn) error { return tx.PutBlob(index.BlobRecord{Digest: d, Origin: "hub"}) }, "index: put blob " + string(d) + ": "},
		{"put manifest", func(tx index.Txn) error { return tx.PutManifest("team/app", index.ManifestRecord{Digest: d}) }, "index: put manifest " + string(d) + " in team/app: "},
		{"tag", func(tx index.Txn) error { return tx.SetTag("team/app", "v1", d) }, "index: tag " + string(d) + " as team/app:v1: "},
		{"pin", func(tx index.Txn) error { return tx.Pin(d, "hub/x:1") }, "index: pin " + string(d) + " (hub/x:1): "},
		{"upload", func(tx index.Txn) error { return tx.PutUpload(index.UploadRecord{ID: "u1"}) }, "index: put upload u1: "},
	}
	for _, tt := range tests {
		err := x.View(func(tx index.Txn) error {
			err := tt.op(tx)
			if _, err := tx.Blob(d); !errors.Is(err, index.ErrNotFound) { // still usable
				t.Errorf("%s: a read after the failed write: %v", tt.name, err)
			}
			return err
		})
		if !errors.Is(err, index.ErrReadOnly) || !strings.HasPrefix(err.Error(), tt.want) || strings.Count(err.Error(), "index:") != 1 {
			t.Errorf("%s: %v, want %q… wrapping ErrReadOnly, saying index: once", tt.name, err, tt.want)
		}
	}
	view(t, x, func(tx index.Txn) error {
		if _, err := tx.Blob(d); err != index.ErrNotFound {
			t.Errorf("Blob(missing) = %v, want the bare ErrNotFound", err)
		}
		if _, err := tx.Manifest("team/app", d); err != index.ErrNotFound {
			t.Errorf("Manifest(missing) = %v, want the bare ErrNotFound", err)
		}
		if _, err := tx.Tag("team/app", "v1"); err != index.ErrNotFound {
			t.Errorf("Tag(missing) = %v, want the bare ErrNotFound", err)
		}
		if _, err := tx.Upload("u1"); err != index.ErrNotFound {
			t.Errorf("Upload(missing) = %v, want the bare ErrNotFound", err)
		}
		if _, err := tx.TagChecked("team/app", "v1"); err != index.ErrNotFound {
			t.Errorf("TagChecked(missing) = %v, want the bare ErrNotFound", err)
		}
		return nil
	})
	if err := x.Update(context.Background(), func(tx index.Txn) error { return tx.DeleteManifest("team/app", d) }); err != index.ErrNotFound {
		t.Errorf("DeleteManifest(missing) = %v, want the bare ErrNotFound", err)
	}
}
