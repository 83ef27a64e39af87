package index_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wharf-registry/wharf/cache/index"
	"github.com/wharf-registry/wharf/oci"
	"github.com/wharf-registry/wharf/storage"
)

type fixture struct {
	x index.Index
	s *storage.Store
}

func newFixture(t *testing.T, onDisk bool) fixture {
	t.Helper()
	s, err := storage.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var x index.Index
	if onDisk {
		x, err = index.Open(filepath.Join(s.Root(), "index"), index.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { x.Close() })
	} else {
		x = openMem(t)
	}
	return fixture{x, s}
}

// push stores data as a blob, records it and links it in repo.
func (f fixture) push(t *testing.T, repo string, data []byte) oci.Digest {
	t.Helper()
	d := oci.FromBytes(data)
	if _, err := f.s.Put(context.Background(), d, int64(len(data)), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	update(t, f.x, func(tx index.Txn) error {
		if err := tx.PutBlob(index.BlobRecord{Digest: d, Size: int64(len(data)), Created: when, LastAccess: when, Origin: "hosted"}); err != nil {
			return err
		}
		return tx.LinkBlob(repo, d)
	})
	return d
}

// pushManifest stores a manifest's bytes as a blob and records it, tagged.
func (f fixture) pushManifest(t *testing.T, repo, tag string, body string) oci.Digest {
	t.Helper()
	d := f.push(t, repo, []byte(body))
	update(t, f.x, func(tx index.Txn) error {
		if err := tx.PutManifest(repo, index.ManifestRecord{Digest: d, MediaType: oci.MediaTypeOCIManifest, Size: int64(len(body)), Created: when}); err != nil {
			return err
		}
		return tx.SetTag(repo, tag, d)
	})
	return d
}

func (f fixture) blobRecord(t *testing.T, d oci.Digest) (index.BlobRecord, error) {
	t.Helper()
	var r index.BlobRecord
	var err error
	view(t, f.x, func(tx index.Txn) error { r, err = tx.Blob(d); return nil })
	return r, err
}

func TestReconcile(t *testing.T) {
	f := newFixture(t, true)
	ctx := context.Background()
	kept := f.push(t, "app", []byte("kept layer"))
	keptManifest := f.pushManifest(t, "app", "v1", `{"kept":true}`)
	lost := f.push(t, "app", []byte("lost layer"))
	lostManifest := f.pushManifest(t, "app", "v2", `{"lost":true}`)
	// The same lost manifest in a second repository goes too.
	update(t, f.x, func(tx index.Txn) error {
		tx.PutManifest("mirror", index.ManifestRecord{Digest: lostManifest, MediaType: oci.MediaTypeOCIManifest})
		return tx.SetTag("mirror", "latest", lostManifest)
	})
	// Files vanish behind the index's back.
	for _, d := range []oci.Digest{lost, lostManifest} {
		if err := os.Remove(f.s.BlobPath(d)); err != nil {
			t.Fatal(err)
		}
	}
	// A file the index never heard of (the index was lost, say).
	orphanData := []byte("orphan")
	orphan := oci.FromBytes(orphanData)
	if _, err := f.s.Put(ctx, orphan, -1, bytes.NewReader(orphanData)); err != nil {
		t.Fatal(err)
	}
	// An interrupted write left a temp file.
	w, err := f.s.NewWriter("sha256")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("half a blob"))
	t.Cleanup(w.Abort)
	// Something that is not a blob.
	stray := filepath.Join(filepath.Dir(f.s.BlobPath(kept)), "notes.txt")
	if err := os.WriteFile(stray, []byte("hi"), 0o600); err != nil {
		t.Fatal(err)
	}

	rep, err := index.Reconcile(ctx, f.x, f.s)
	if err != nil {
		t.Fatal(err)
	}
	want := index.ReconcileReport{
		TempFilesRemoved:  1,
		RecordsDropped:    2,
		ManifestsDropped:  2,
		FilesIndexed:      1,
		BlobsOnDisk:       3,
		BytesOnDisk:       int64(len("kept layer") + len(`{"kept":true}`) + len("orphan")),
		UnrecognizedFiles: []string{stray},
	}
	if rep.TempFilesRemoved != want.TempFilesRemoved || rep.RecordsDropped != want.RecordsDropped ||
		rep.ManifestsDropped != want.ManifestsDropped || rep.FilesIndexed != want.FilesIndexed ||
		rep.BlobsOnDisk != want.BlobsOnDisk || rep.BytesOnDisk != want.BytesOnDisk ||
		strings.Join(rep.UnrecognizedFiles, ",") != stray {
		t.Errorf("report = %+v\nwant     %+v", rep, want)
	}

	view(t, f.x, func(tx index.Txn) error {
		for _, d := range []oci.Digest{lost, lostManifest} {
			if _, err := tx.Blob(d); !errors.Is(err, index.ErrNotFound) {
				t.Errorf("record of vanished %s: %v", d, err)
			}
			if ok, _ := tx.BlobLinked("app", d); ok {
				t.Errorf("vanished %s still linked", d)
			}
		}
		for _, repo := range []string{"app", "mirror"} {
			if _, err := tx.Manifest(repo, lostManifest); !errors.Is(err, index.ErrNotFound) {
				t.Errorf("%s: manifest without bytes kept: %v", repo, err)
			}
		}
		if _, err := tx.Tag("app", "v2"); !errors.Is(err, index.ErrNotFound) {
			t.Errorf("tag of a dropped manifest kept: %v", err)
		}
		if _, err := tx.Tag("mirror", "latest"); !errors.Is(err, index.ErrNotFound) {
			t.Errorf("mirror tag of a dropped manifest kept: %v", err)
		}
		for _, d := range []oci.Digest{kept, keptManifest} {
			if ok, _ := tx.BlobLinked("app", d); !ok {
				t.Errorf("kept %s lost its link", d)
			}
		}
		if d, err := tx.Tag("app", "v1"); err != nil || d != keptManifest {
			t.Errorf("kept tag: %s, %v", d, err)
		}
		r, err := tx.Blob(orphan)
		if err != nil || r.Size != int64(len(orphanData)) || r.Origin != "recovered" || r.Created.IsZero() {
			t.Errorf("re-indexed orphan = %+v, %v", r, err)
		}
		// Re-indexed, but visible nowhere until pushed again.
		if repos, _ := tx.BlobRepos(orphan); len(repos) != 0 {
			t.Errorf("orphan linked in %v", repos)
		}
		if r, _ := tx.Blob(kept); r.Origin != "hosted" {
			t.Errorf("kept record rewritten: %+v", r)
		}
		return nil
	})
	if _, err := os.Stat(stray); err != nil {
		t.Errorf("Reconcile removed an unrecognized file: %v", err)
	}

	// A second pass finds nothing to do.
	rep, err = index.Reconcile(ctx, f.x, f.s)
	if err != nil {
		t.Fatal(err)
	}
	if rep.TempFilesRemoved+rep.RecordsDropped+rep.ManifestsDropped+rep.FilesIndexed != 0 || rep.BlobsOnDisk != 3 {
		t.Errorf("second Reconcile = %+v", rep)
	}
}

func TestReconcileEmptyAndCancelled(t *testing.T) {
	f := newFixture(t, false)
	rep, err := index.Reconcile(context.Background(), f.x, f.s)
	if err != nil || rep.BlobsOnDisk != 0 || len(rep.UnrecognizedFiles) != 0 {
		t.Errorf("empty store: %+v, %v", rep, err)
	}
	f.push(t, "r", []byte("x"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := index.Reconcile(ctx, f.x, f.s); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Reconcile = %v", err)
	}
}

func TestFsckClean(t *testing.T) {
	f := newFixture(t, false)
	var total int64
	for _, s := range []string{"one", "two", "three"} {
		f.push(t, "r", []byte(s))
		total += int64(len(s))
	}
	var calls int
	var lastDone, lastTotal int64
	rep, err := index.Fsck(context.Background(), f.x, f.s, false, func(done, tot int64) {
		calls++
		lastDone, lastTotal = done, tot
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Checked != 3 || rep.Bytes != total || len(rep.Problems) != 0 || rep.Repaired != 0 {
		t.Errorf("report = %+v", rep)
	}
	if calls != 3 || lastDone != total || lastTotal != total {
		t.Errorf("progress: %d calls, last %d/%d", calls, lastDone, lastTotal)
	}
	if rep, err := index.Fsck(context.Background(), f.x, f.s, true, nil); err != nil || len(rep.Problems) != 0 || rep.Repaired != 0 {
		t.Errorf("repair of a clean store = %+v, %v", rep, err)
	}
}

func TestFsckCorruptBlob(t *testing.T) {
	f := newFixture(t, false)
	good := f.push(t, "app", []byte("good layer"))
	body := `{"schemaVersion":2}`
	bad := f.pushManifest(t, "app", "latest", body)
	// Bit rot: same size, different bytes.
	path := f.s.BlobPath(bad)
	if err := os.WriteFile(path, []byte(strings.Replace(body, "2", "3", 1)), 0o640); err != nil {
		t.Fatal(err)
	}
	stray := filepath.Join(filepath.Dir(f.s.BlobPath(good)), "stray")
	os.WriteFile(stray, nil, 0o600)

	rep, err := index.Fsck(context.Background(), f.x, f.s, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	probs := map[string]index.FsckProblem{}
	for _, p := range rep.Problems {
		probs[p.Path] = p
	}
	if rep.Checked != 2 || len(rep.Problems) != 2 || rep.Repaired != 0 {
		t.Fatalf("report = %+v", rep)
	}
	if p := probs[path]; p.Digest != bad || !strings.Contains(p.What, "does not match") {
		t.Errorf("corrupt blob problem = %+v", p)
	}
	if p := probs[stray]; p.Digest != "" || !strings.Contains(p.What, "not a digest") {
		t.Errorf("stray file problem = %+v", p)
	}
	// Without repair nothing changes.
	if _, err := os.Stat(path); err != nil {
		t.Errorf("check-only Fsck moved the file: %v", err)
	}
	if _, err := f.blobRecord(t, bad); err != nil {
		t.Errorf("check-only Fsck dropped the record: %v", err)
	}

	rep, err = index.Fsck(context.Background(), f.x, f.s, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Repaired != 1 {
		t.Errorf("repair report = %+v", rep)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("corrupt file still in place: %v", err)
	}
	if _, err := os.Stat(filepath.Join(f.s.Root(), "quarantine", bad.Hex())); err != nil {
		t.Errorf("corrupt file not quarantined: %v", err)
	}
	if _, err := f.blobRecord(t, bad); !errors.Is(err, index.ErrNotFound) {
		t.Errorf("record of the corrupt blob kept: %v", err)
	}
	view(t, f.x, func(tx index.Txn) error {
		if ok, _ := tx.BlobLinked("app", bad); ok {
			t.Error("corrupt blob still linked")
		}
		if _, err := tx.Manifest("app", bad); !errors.Is(err, index.ErrNotFound) {
			t.Errorf("manifest whose bytes were quarantined kept: %v", err)
		}
		if _, err := tx.Tag("app", "latest"); !errors.Is(err, index.ErrNotFound) {
			t.Errorf("tag of that manifest kept: %v", err)
		}
		if ok, _ := tx.BlobLinked("app", good); !ok {
			t.Error("good blob lost its link")
		}
		return nil
	})
	// Afterwards only the stray file is left to report.
	rep, err = index.Fsck(context.Background(), f.x, f.s, false, nil)
	if err != nil || rep.Checked != 1 || len(rep.Problems) != 1 || rep.Problems[0].Path != stray {
		t.Errorf("after repair: %+v, %v", rep, err)
	}
}

func TestFsckSizeMismatch(t *testing.T) {
	f := newFixture(t, false)
	d := f.push(t, "r", []byte("twelve bytes"))
	noRecord := []byte("no record")
	if _, err := f.s.Put(context.Background(), oci.FromBytes(noRecord), -1, bytes.NewReader(noRecord)); err != nil {
		t.Fatal(err)
	}
	update(t, f.x, func(tx index.Txn) error {
		r, err := tx.Blob(d)
		if err != nil {
			return err
		}
		r.Size = 99
		return tx.PutBlob(r)
	})
	rep, err := index.Fsck(context.Background(), f.x, f.s, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 1 || rep.Problems[0].Digest != d || !strings.Contains(rep.Problems[0].What, "index says 99 bytes, file has 12") {
		t.Fatalf("problems = %+v", rep.Problems)
	}
	if r, _ := f.blobRecord(t, d); r.Size != 99 {
		t.Errorf("check-only Fsck changed the record: %+v", r)
	}
	rep, err = index.Fsck(context.Background(), f.x, f.s, true, nil)
	if err != nil || rep.Repaired != 1 {
		t.Fatalf("repair = %+v, %v", rep, err)
	}
	r, err := f.blobRecord(t, d)
	if err != nil || r.Size != 12 || r.Origin != "hosted" {
		t.Errorf("repaired record = %+v, %v", r, err)
	}
	// The repair pass ran Reconcile, which recorded the unindexed file.
	if r, err := f.blobRecord(t, oci.FromBytes(noRecord)); err != nil || r.Origin != "recovered" {
		t.Errorf("unindexed file after repair = %+v, %v", r, err)
	}
	if _, err := os.Stat(f.s.BlobPath(d)); err != nil {
		t.Errorf("a size mismatch must not quarantine the file: %v", err)
	}
	rep, _ = index.Fsck(context.Background(), f.x, f.s, false, nil)
	if len(rep.Problems) != 0 {
		t.Errorf("after repair: %+v", rep.Problems)
	}
}

func TestFsckCancelled(t *testing.T) {
	f := newFixture(t, false)
	f.push(t, "r", []byte("x"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := index.Fsck(ctx, f.x, f.s, false, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Fsck = %v", err)
	}
}

// TestReconcileSHA512 covers blobs under the second algorithm.
func TestReconcileSHA512(t *testing.T) {
	f := newFixture(t, false)
	data := []byte("sha512 content")
	d := oci.FromBytesAlg("sha512", data)
	if _, err := f.s.Put(context.Background(), d, -1, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	rep, err := index.Reconcile(context.Background(), f.x, f.s)
	if err != nil || rep.FilesIndexed != 1 {
		t.Fatalf("Reconcile = %+v, %v", rep, err)
	}
	if r, err := f.blobRecord(t, d); err != nil || r.Size != int64(len(data)) {
		t.Errorf("sha512 record = %+v, %v", r, err)
	}
	frep, err := index.Fsck(context.Background(), f.x, f.s, false, nil)
	if err != nil || frep.Checked != 1 || len(frep.Problems) != 0 {
		t.Errorf("Fsck = %+v, %v", frep, err)
	}
}
