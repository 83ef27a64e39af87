package hosted

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wharf-registry/wharf/cache/index"
	"github.com/wharf-registry/wharf/internal/testclock"
	"github.com/wharf-registry/wharf/oci"
	"github.com/wharf-registry/wharf/storage"
)

const (
	mtLayer  = "application/vnd.oci.image.layer.v1.tar+gzip"
	mtConfig = "application/vnd.oci.image.config.v1+json"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

type fixture struct {
	t     *testing.T
	s     *Service
	store *storage.Store
	idx   index.Index
	clk   *testclock.Clock
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	store, err := storage.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	idx, err := index.Open("", index.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idx.Close() })
	f := &fixture{t: t, s: New(store, idx, nil), store: store, idx: idx, clk: testclock.New(t0)}
	f.s.now = f.clk.Now
	return f
}

// blob uploads content to repo.
func (f *fixture) blob(repo, content string) oci.Descriptor {
	f.t.Helper()
	b := []byte(content)
	d := oci.FromBytes(b)
	if err := f.s.PutBlob(context.Background(), repo, d, int64(len(b)), bytes.NewReader(b)); err != nil {
		f.t.Fatalf("uploading %q to %s: %v", content, repo, err)
	}
	return oci.Descriptor{MediaType: mtLayer, Digest: d, Size: int64(len(b))}
}

func imageManifest(config oci.Descriptor, layers ...oci.Descriptor) []byte {
	config.MediaType = mtConfig
	m := map[string]any{"schemaVersion": 2, "mediaType": oci.MediaTypeOCIManifest, "config": config, "layers": append([]oci.Descriptor{}, layers...)}
	b, _ := json.Marshal(m)
	return b
}

func indexManifest(children ...oci.Descriptor) []byte {
	b, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": oci.MediaTypeOCIIndex, "manifests": append([]oci.Descriptor{}, children...)})
	return b
}

// image uploads a config and layers (by content) to repo and pushes a
// manifest for them under tag. It returns the manifest's digest and every
// digest the image consists of.
func (f *fixture) image(repo, tag string, layers ...string) (oci.Digest, []oci.Digest) {
	f.t.Helper()
	cfg := f.blob(repo, "config of "+repo+":"+tag)
	all := []oci.Digest{cfg.Digest}
	var ls []oci.Descriptor
	for _, l := range layers {
		ls = append(ls, f.blob(repo, l))
		all = append(all, ls[len(ls)-1].Digest)
	}
	d, err := f.put(repo, tag, oci.MediaTypeOCIManifest, imageManifest(cfg, ls...))
	if err != nil {
		f.t.Fatalf("pushing %s:%s: %v", repo, tag, err)
	}
	return d, append(all, d)
}

func (f *fixture) put(repo, tag, mt string, body []byte) (oci.Digest, error) {
	res, err := f.s.PutManifest(context.Background(), repo, oci.Reference{Tag: tag}, mt, body)
	return res.Digest, err
}

func (f *fixture) gc(o GCOptions) GCReport {
	f.t.Helper()
	rep, err := f.s.GC(context.Background(), o)
	if err != nil {
		f.t.Fatalf("GC: %v", err)
	}
	return rep
}

// present reports whether d has a record and a file.
func (f *fixture) present(d oci.Digest) bool {
	err := f.idx.View(func(tx index.Txn) error { _, err := tx.Blob(d); return err })
	_, ferr := f.store.Stat(d)
	return err == nil && ferr == nil
}

func (f *fixture) record(d oci.Digest) index.BlobRecord {
	f.t.Helper()
	var r index.BlobRecord
	if err := f.idx.View(func(tx index.Txn) error { var err error; r, err = tx.Blob(d); return err }); err != nil {
		f.t.Fatalf("record of %s: %v", d, err)
	}
	return r
}

func (f *fixture) linked(repo string, d oci.Digest) bool {
	ok := false
	f.idx.View(func(tx index.Txn) error { var err error; ok, err = tx.BlobLinked(repo, d); return err })
	return ok
}

// proxied records a blob the way a proxy fill does.
func (f *fixture) proxied(proxy, repo, content string) oci.Digest {
	f.t.Helper()
	b := []byte(content)
	d := oci.FromBytes(b)
	if _, err := f.store.Put(context.Background(), d, int64(len(b)), bytes.NewReader(b)); err != nil {
		f.t.Fatal(err)
	}
	now := f.clk.Now()
	err := f.idx.Update(context.Background(), func(tx index.Txn) error {
		if _, err := tx.Blob(d); errors.Is(err, index.ErrNotFound) {
			if err := tx.PutBlob(index.BlobRecord{Digest: d, Size: int64(len(b)), Created: now, LastAccess: now, Origin: proxy}); err != nil {
				return err
			}
		}
		return tx.LinkBlob(repo, d)
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return d
}

// pullable checks that repo serves manifest d and every blob it references,
// with the right bytes.
func (f *fixture) pullable(repo string, d oci.Digest) error {
	m, err := f.s.GetManifest(context.Background(), repo, oci.Reference{Digest: d})
	if err != nil {
		return fmt.Errorf("manifest %s@%s: %w", repo, d, err)
	}
	parsed, err := oci.ParseManifest(m.MediaType, m.Body)
	if err != nil {
		return err
	}
	for _, ref := range parsed.References() {
		if oci.IsManifestMediaType(ref.MediaType) {
			if err := f.pullable(repo, ref.Digest); err != nil {
				return err
			}
			continue
		}
		fh, _, err := f.s.OpenBlob(context.Background(), repo, ref.Digest)
		if err != nil {
			return fmt.Errorf("blob %s of %s@%s: %w", ref.Digest, repo, d, err)
		}
		b, err := io.ReadAll(fh)
		fh.Close()
		if err != nil || oci.FromBytes(b) != ref.Digest {
			return fmt.Errorf("blob %s of %s@%s: wrong bytes (%v)", ref.Digest, repo, d, err)
		}
	}
	return nil
}

// state is everything GC could change, for before/after comparisons.
func (f *fixture) state() string {
	f.t.Helper()
	var lines []string
	err := f.idx.View(func(tx index.Txn) error {
		if err := tx.EachBlob(func(r index.BlobRecord) error {
			lines = append(lines, fmt.Sprintf("blob %s %d %s %s %s", r.Digest, r.Size, r.Origin, r.Created.Format(time.RFC3339Nano), r.LastAccess.Format(time.RFC3339Nano)))
			return nil
		}); err != nil {
			return err
		}
		if err := tx.EachLink(func(repo string, d oci.Digest) error {
			lines = append(lines, "link "+repo+" "+string(d))
			return nil
		}); err != nil {
			return err
		}
		if err := tx.EachManifest("", func(repo string, r index.ManifestRecord) error {
			lines = append(lines, "manifest "+repo+" "+string(r.Digest))
			return nil
		}); err != nil {
			return err
		}
		u, err := tx.Usages()
		for _, k := range slices.Sorted(maps.Keys(u)) {
			lines = append(lines, fmt.Sprintf("usage %s %+v", k, u[k]))
		}
		return err
	})
	if err != nil {
		f.t.Fatal(err)
	}
	f.store.Walk(func(d oci.Digest, size int64) error {
		lines = append(lines, fmt.Sprintf("file %s %d", d, size))
		return nil
	}, func(string) {})
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// consistent checks that usage counters match the records and that every
// record has its file.
func (f *fixture) consistent() {
	f.t.Helper()
	sums := map[string]index.Usage{}
	var usages map[string]index.Usage
	err := f.idx.View(func(tx index.Txn) error {
		err := tx.EachBlob(func(r index.BlobRecord) error {
			u := sums[r.Origin]
			u.Bytes += r.Size
			u.Count++
			sums[r.Origin] = u
			if _, err := f.store.Stat(r.Digest); err != nil {
				f.t.Errorf("record %s (%s) has no file", r.Digest, r.Origin)
			}
			return nil
		})
		if err != nil {
			return err
		}
		usages, err = tx.Usages()
		return err
	})
	if err != nil {
		f.t.Fatal(err)
	}
	for origin, u := range usages {
		if u != sums[origin] {
			f.t.Errorf("usage of %s is %+v, records add up to %+v", origin, u, sums[origin])
		}
	}
}

func TestMark(t *testing.T) {
	d := func(s string) oci.Digest { return oci.FromBytes([]byte(s)) }
	desc := func(s, mt string) oci.Descriptor {
		return oci.Descriptor{MediaType: mt, Digest: d(s), Size: int64(len(s))}
	}
	img1 := imageManifest(desc("cfg1", mtConfig), desc("l1", mtLayer), desc("shared", mtLayer))
	img2 := imageManifest(desc("cfg2", mtConfig), desc("l2", mtLayer), desc("shared", mtLayer))
	list := indexManifest(oci.Descriptor{MediaType: oci.MediaTypeOCIManifest, Digest: oci.FromBytes(img1), Size: int64(len(img1))},
		oci.Descriptor{MediaType: oci.MediaTypeOCIManifest, Digest: oci.FromBytes(img2), Size: int64(len(img2))})
	foreign := desc("windows base", "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip")
	foreign.URLs = []string{"https://example.com/layer"}
	withForeign := imageManifest(desc("cfg3", mtConfig), foreign, desc("l3", mtLayer))
	subject := oci.Descriptor{MediaType: oci.MediaTypeOCIManifest, Digest: d("somewhere else"), Size: 1}
	sbom, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": oci.MediaTypeOCIManifest, "artifactType": "application/spdx+json",
		"config": oci.Descriptor{MediaType: oci.MediaTypeOCIEmptyJSON, Digest: d("{}"), Size: 2},
		"layers": []oci.Descriptor{desc("sbom", "application/spdx+json")}, "subject": subject})
	docker, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": oci.MediaTypeDockerManifest,
		"config": desc("dcfg", "application/vnd.docker.container.image.v1+json"), "layers": []oci.Descriptor{desc("dl", "application/vnd.docker.image.rootfs.diff.tar.gzip")}})
	set := func(ds ...oci.Digest) map[oci.Digest]bool {
		m := map[oci.Digest]bool{}
		for _, x := range ds {
			m[x] = true
		}
		return m
	}
	type stored struct {
		repo, mt string
		body     []byte
		missing  bool // the manifest's bytes cannot be read
	}
	tests := []struct {
		name       string
		manifests  []stored
		proxies    []string
		want       map[string]map[oci.Digest]bool
		unreadable []string
	}{
		{"nothing", nil, nil, map[string]map[oci.Digest]bool{}, nil},
		{"image: itself, config, layers",
			[]stored{{"team/a", oci.MediaTypeOCIManifest, img1, false}}, nil,
			map[string]map[oci.Digest]bool{"team/a": set(oci.FromBytes(img1), d("cfg1"), d("l1"), d("shared"))}, nil},
		{"docker schema 2",
			[]stored{{"team/a", oci.MediaTypeDockerManifest, docker, false}}, nil,
			map[string]map[oci.Digest]bool{"team/a": set(oci.FromBytes(docker), d("dcfg"), d("dl"))}, nil},
		{"index: its children, which are manifests of the repository too",
			[]stored{{"team/a", oci.MediaTypeOCIManifest, img1, false}, {"team/a", oci.MediaTypeOCIManifest, img2, false}, {"team/a", oci.MediaTypeOCIIndex, list, false}}, nil,
			map[string]map[oci.Digest]bool{"team/a": set(oci.FromBytes(list), oci.FromBytes(img1), oci.FromBytes(img2), d("cfg1"), d("cfg2"), d("l1"), d("l2"), d("shared"))}, nil},
		{"index alone marks its children even if their records are gone",
			[]stored{{"team/a", oci.MediaTypeOCIIndex, list, false}}, nil,
			map[string]map[oci.Digest]bool{"team/a": set(oci.FromBytes(list), oci.FromBytes(img1), oci.FromBytes(img2))}, nil},
		{"referrer: its blobs but not its subject",
			[]stored{{"team/a", oci.MediaTypeOCIManifest, sbom, false}}, nil,
			map[string]map[oci.Digest]bool{"team/a": set(oci.FromBytes(sbom), d("{}"), d("sbom"))}, nil},
		{"foreign layers are marked too",
			[]stored{{"team/a", oci.MediaTypeOCIManifest, withForeign, false}}, nil,
			map[string]map[oci.Digest]bool{"team/a": set(oci.FromBytes(withForeign), d("cfg3"), foreign.Digest, d("l3"))}, nil},
		{"per repository: a shared layer is in both",
			[]stored{{"team/a", oci.MediaTypeOCIManifest, img1, false}, {"team/b", oci.MediaTypeOCIManifest, img2, false}}, nil,
			map[string]map[oci.Digest]bool{
				"team/a": set(oci.FromBytes(img1), d("cfg1"), d("l1"), d("shared")),
				"team/b": set(oci.FromBytes(img2), d("cfg2"), d("l2"), d("shared"))}, nil},
		{"proxied repositories are not read",
			[]stored{{"team/a", oci.MediaTypeOCIManifest, img1, false}, {"hub/library/x", oci.MediaTypeOCIManifest, img2, true}}, []string{"hub"},
			map[string]map[oci.Digest]bool{"team/a": set(oci.FromBytes(img1), d("cfg1"), d("l1"), d("shared"))}, nil},
		{"a hosted repository named like a proxy only by prefix is hosted",
			[]stored{{"hubble/x", oci.MediaTypeOCIManifest, img1, false}}, []string{"hub"},
			map[string]map[oci.Digest]bool{"hubble/x": set(oci.FromBytes(img1), d("cfg1"), d("l1"), d("shared"))}, nil},
		{"unreadable manifest: itself marked, repository flagged",
			[]stored{{"team/a", oci.MediaTypeOCIManifest, img1, true}, {"team/b", oci.MediaTypeOCIManifest, img2, false}}, nil,
			map[string]map[oci.Digest]bool{
				"team/a": set(oci.FromBytes(img1)),
				"team/b": set(oci.FromBytes(img2), d("cfg2"), d("l2"), d("shared"))}, []string{"team/a"}},
		{"unparseable manifest",
			[]stored{{"team/a", oci.MediaTypeOCIManifest, []byte(`{"schemaVersion":1}`), false}}, nil,
			map[string]map[oci.Digest]bool{"team/a": set(oci.FromBytes([]byte(`{"schemaVersion":1}`)))}, []string{"team/a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			bodies := map[oci.Digest][]byte{}
			err := f.idx.Update(context.Background(), func(tx index.Txn) error {
				for _, m := range tt.manifests {
					md := oci.FromBytes(m.body)
					if !m.missing {
						bodies[md] = m.body
					}
					if err := tx.PutManifest(m.repo, index.ManifestRecord{Digest: md, MediaType: m.mt, Size: int64(len(m.body))}); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			read := func(d oci.Digest) ([]byte, error) {
				if b, ok := bodies[d]; ok {
					return b, nil
				}
				return nil, oci.ErrBlobUnknown
			}
			var m *marks
			if err := f.idx.View(func(tx index.Txn) error { var err error; m, err = mark(tx, read, proxiedFunc(tt.proxies)); return err }); err != nil {
				t.Fatal(err)
			}
			if !maps.EqualFunc(m.repos, tt.want, maps.Equal) {
				t.Errorf("marked per repository:\n got %v\nwant %v", m.repos, tt.want)
			}
			all := map[oci.Digest]bool{}
			for _, r := range tt.want {
				maps.Copy(all, r)
			}
			if !maps.Equal(m.all, all) {
				t.Errorf("marked overall: got %v, want %v", m.all, all)
			}
			if got := slices.Sorted(maps.Keys(m.unreadable)); !slices.Equal(got, tt.unreadable) {
				t.Errorf("unreadable repositories %v, want %v", got, tt.unreadable)
			}
			if len(m.problems) != len(tt.unreadable) {
				t.Errorf("problems %q", m.problems)
			}
		})
	}
}

// garbage builds a registry with something of everything, then deletes a
// manifest and a tag. It returns what GC with a 1h grace must free.
type garbage struct {
	freed                 []oci.Digest // exactly these blobs go
	kept                  []oci.Digest // these stay, with their files
	unlinked              []GCLink
	b1, a2, c1            oci.Digest
	proxiedBlob, returned oci.Digest
	fresh                 oci.Digest
}

func makeGarbage(f *fixture) garbage {
	var g garbage
	a1, a1blobs := f.image("team/a", "v1", "shared", "a1-only", "a1-only-too")
	var a2blobs []oci.Digest
	g.a2, a2blobs = f.image("team/a", "v2", "a2-only")
	var b1blobs []oci.Digest
	g.b1, b1blobs = f.image("team/b", "v1", "shared", "b1-only")
	orphan := f.blob("team/a", "uploaded, never referenced").Digest
	// A blob both a hosted repository and a proxy hold.
	g.returned = f.blob("team/c", "hosted and proxied").Digest
	f.proxied("hub", "hub/library/y", "hosted and proxied")
	g.proxiedBlob = f.proxied("hub", "hub/library/x", "only proxied")
	// An image in a repository whose only tag goes: the manifest stays.
	g.c1, _ = f.image("team/c", "v1", "c1-only")
	ctx := context.Background()
	if err := f.s.DeleteManifest(ctx, "team/a", oci.Reference{Digest: a1}); err != nil {
		f.t.Fatal(err)
	}
	if err := f.s.DeleteManifest(ctx, "team/c", oci.Reference{Tag: "v1"}); err != nil {
		f.t.Fatal(err)
	}
	f.clk.Advance(2 * time.Hour)
	g.fresh = f.blob("team/a", "pushed a moment ago").Digest

	shared := a1blobs[1]
	g.freed = []oci.Digest{a1blobs[0], a1blobs[2], a1blobs[3], a1, orphan}
	for _, d := range g.freed {
		g.unlinked = append(g.unlinked, GCLink{"team/a", d})
	}
	g.unlinked = append(g.unlinked, GCLink{"team/a", shared}, GCLink{"team/c", g.returned})
	g.kept = append(append(append([]oci.Digest{g.fresh, g.proxiedBlob, g.returned, g.c1}, a2blobs...), b1blobs...), shared)
	return g
}

func digestsOf(bs []GCBlob) []oci.Digest {
	var out []oci.Digest
	for _, b := range bs {
		out = append(out, b.Digest)
	}
	slices.Sort(out)
	return out
}

func sortedLinks(ls []GCLink) []GCLink {
	out := slices.Clone(ls)
	slices.SortFunc(out, func(a, b GCLink) int { return strings.Compare(a.Repo+string(a.Digest), b.Repo+string(b.Digest)) })
	return out
}

func TestGCFreesExactlyWhatNothingReferences(t *testing.T) {
	f := newFixture(t)
	g := makeGarbage(f)
	hub := f.record(g.proxiedBlob)

	rep := f.gc(GCOptions{Grace: time.Hour, Proxies: []string{"hub"}})
	want := slices.Sorted(slices.Values(g.freed))
	if got := digestsOf(rep.Freed); !slices.Equal(got, want) {
		t.Errorf("freed\n %v\nwant\n %v", got, want)
	}
	var size int64
	for _, b := range rep.Freed {
		size += b.Size
		if b.Origin != index.OriginHosted {
			t.Errorf("freed %s of origin %q", b.Digest, b.Origin)
		}
	}
	if rep.BlobsFreed != len(want) || rep.BytesFreed != size || size == 0 {
		t.Errorf("report says %d blobs, %d bytes; listed %d, %d", rep.BlobsFreed, rep.BytesFreed, len(rep.Freed), size)
	}
	if got, want := sortedLinks(rep.Unlinked), sortedLinks(g.unlinked); !slices.Equal(got, want) || rep.LinksRemoved != len(want) {
		t.Errorf("unlinked (%d)\n %v\nwant\n %v", rep.LinksRemoved, got, want)
	}
	if rep.ReturnedToCache != 1 || rep.Kept != 0 || len(rep.Problems) != 0 {
		t.Errorf("returned %d, kept %d, problems %q", rep.ReturnedToCache, rep.Kept, rep.Problems)
	}
	if rep.Manifests != 3 || rep.Repositories != 3 || rep.Grace != time.Hour || rep.DryRun {
		t.Errorf("report %+v", rep)
	}
	for _, d := range g.freed {
		if f.present(d) {
			t.Errorf("%s is still there", d)
		}
		if _, err := f.store.Stat(d); err == nil {
			t.Errorf("file of %s is still there", d)
		}
	}
	for _, d := range g.kept {
		if !f.present(d) {
			t.Errorf("%s was freed", d)
		}
	}
	if !f.linked("team/a", g.fresh) {
		t.Error("a blob pushed within the grace period was unlinked")
	}
	for repo, d := range map[string]oci.Digest{"team/b": g.b1, "team/a": g.a2, "team/c": g.c1} {
		if err := f.pullable(repo, d); err != nil {
			t.Error(err)
		}
	}
	if r := f.record(g.proxiedBlob); !same(r, hub) || !f.linked("hub/library/x", g.proxiedBlob) {
		t.Errorf("a proxied blob was touched: %+v", r)
	}
	if r := f.record(g.returned); r.Origin != "hub" || !f.linked("hub/library/y", g.returned) || f.linked("team/c", g.returned) {
		t.Errorf("a hosted blob only a proxy links should be the proxy's again: %+v", r)
	}
	f.consistent()

	// Nothing left to do, until the fresh blob is old.
	if again := f.gc(GCOptions{Grace: time.Hour, Proxies: []string{"hub"}}); again.BlobsFreed+again.LinksRemoved+again.ReturnedToCache != 0 {
		t.Errorf("second run: %+v", again)
	}
	f.clk.Advance(2 * time.Hour)
	if later := f.gc(GCOptions{Grace: time.Hour, Proxies: []string{"hub"}}); later.BlobsFreed != 1 || later.Freed[0].Digest != g.fresh {
		t.Errorf("after the grace period: %+v", later)
	}
	f.consistent()
}

func TestGCDryRunChangesNothing(t *testing.T) {
	f := newFixture(t)
	g := makeGarbage(f)
	before := f.state()
	dry := f.gc(GCOptions{Grace: time.Hour, Proxies: []string{"hub"}, DryRun: true})
	if after := f.state(); after != before {
		t.Fatalf("dry run changed the index or the files:\nbefore\n%s\nafter\n%s", before, after)
	}
	if !dry.DryRun || !slices.Equal(digestsOf(dry.Freed), slices.Sorted(slices.Values(g.freed))) || dry.ReturnedToCache != 1 {
		t.Errorf("dry run reports %+v", dry)
	}
	real := f.gc(GCOptions{Grace: time.Hour, Proxies: []string{"hub"}})
	if real.BlobsFreed != dry.BlobsFreed || real.BytesFreed != dry.BytesFreed || real.LinksRemoved != dry.LinksRemoved ||
		!slices.Equal(digestsOf(real.Freed), digestsOf(dry.Freed)) || !slices.Equal(sortedLinks(real.Unlinked), sortedLinks(dry.Unlinked)) {
		t.Errorf("the run did not do what the dry run said:\n dry %+v\nreal %+v", dry, real)
	}
}

func TestGCGrace(t *testing.T) {
	f := newFixture(t)
	x := f.blob("team/a", "x").Digest
	y := f.blob("team/a", "y").Digest
	ctx := context.Background()
	if err := f.s.DeleteBlob(ctx, "team/a", y); err != nil {
		t.Fatal(err)
	}
	f.clk.Advance(30 * time.Minute)
	if rep := f.gc(GCOptions{}); rep.Grace != DefaultGrace || rep.BlobsFreed+rep.LinksRemoved != 0 {
		t.Errorf("within the default grace: %+v", rep)
	}
	f.clk.Advance(45 * time.Minute)
	// Using a blob again restarts its grace period: uploading y again,
	// mounting x into another repository.
	if err := f.s.PutBlob(ctx, "team/b", y, 1, strings.NewReader("y")); err != nil {
		t.Fatal(err)
	}
	if ok, err := f.s.MountBlob(ctx, "team/c", "team/a", x); err != nil || !ok {
		t.Fatalf("mount: %v %v", ok, err)
	}
	if rep := f.gc(GCOptions{}); rep.BlobsFreed+rep.LinksRemoved != 0 {
		t.Errorf("used again within the grace period: %+v", rep)
	}
	f.clk.Advance(2 * time.Hour)
	rep := f.gc(GCOptions{})
	if rep.BlobsFreed != 2 || rep.LinksRemoved != 3 {
		t.Errorf("after the grace period: %+v", rep)
	}
	// No grace at all.
	z := f.blob("team/a", "z").Digest
	if rep := f.gc(GCOptions{Grace: -1}); rep.Grace != 0 || rep.BlobsFreed != 0 || rep.LinksRemoved != 0 {
		t.Errorf("grace -1 with the clock standing still: %+v", rep)
	}
	f.clk.Advance(time.Nanosecond)
	if rep := f.gc(GCOptions{Grace: -1}); rep.BlobsFreed != 1 || f.present(z) {
		t.Errorf("no grace: %+v", rep)
	}
	f.consistent()
}

func TestHostedPushTakesProxiedBlobFromCache(t *testing.T) {
	f := newFixture(t)
	d := f.proxied("hub", "hub/library/alpine", "base layer")
	f.blob("team/a", "base layer")
	if r := f.record(d); r.Origin != index.OriginHosted || r.Evictable() {
		t.Errorf("a blob a hosted repository holds is still the cache's: %+v", r)
	}
	f.consistent()
	// The hosted repository lets go; the proxy still links it: back to the cache.
	if err := f.s.DeleteBlob(context.Background(), "team/a", d); err != nil {
		t.Fatal(err)
	}
	f.clk.Advance(2 * time.Hour)
	if rep := f.gc(GCOptions{Proxies: []string{"hub"}}); rep.ReturnedToCache != 1 || rep.BlobsFreed != 0 || f.record(d).Origin != "hub" {
		t.Errorf("%+v; record %+v", rep, f.record(d))
	}
	f.consistent()
}

func TestGCLeavesManifestsWithUnreadableManifestsAlone(t *testing.T) {
	f := newFixture(t)
	a, _ := f.image("team/a", "v1", "l1")
	orphan := f.blob("team/b", "orphan").Digest
	f.store.Delete(a) // the manifest's bytes are lost
	f.clk.Advance(2 * time.Hour)
	rep := f.gc(GCOptions{})
	if len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], string(a)) || rep.BlobsFreed != 0 {
		t.Errorf("%+v", rep)
	}
	if f.linked("team/b", orphan) || !f.present(orphan) {
		t.Error("links in readable repositories should still go, but no blob")
	}
}

func TestGCOneAtATime(t *testing.T) {
	f := newFixture(t)
	f.s.gcMu.Lock()
	_, err := f.s.GC(context.Background(), GCOptions{})
	f.s.gcMu.Unlock()
	if !errors.Is(err, ErrGCRunning) {
		t.Errorf("got %v", err)
	}
}

// A push that commits after the mark changed the records it references,
// so the sweep keeps them.
func TestGCKeepsWhatAPushReferencedAfterTheMark(t *testing.T) {
	f := newFixture(t)
	cfg := f.blob("team/a", "config")
	l := f.blob("team/a", "layer")
	f.clk.Advance(2 * time.Hour)
	p, err := f.s.plan(nil, f.clk.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.blobs) != 2 || len(p.links) != 2 {
		t.Fatalf("plan: %d blobs, %d links", len(p.blobs), len(p.links))
	}
	m, err := f.put("team/a", "v1", oci.MediaTypeOCIManifest, imageManifest(cfg, l))
	if err != nil {
		t.Fatal(err)
	}
	rep := GCReport{}
	if err := f.s.sweep(context.Background(), p, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.BlobsFreed != 0 || rep.LinksRemoved != 0 || rep.Kept != 2 {
		t.Errorf("%+v", rep)
	}
	if err := f.pullable("team/a", m); err != nil {
		t.Error(err)
	}
}

// A collection that deletes a blob while a push's transaction holds it
// makes the push conflict; its retry fails with MANIFEST_BLOB_UNKNOWN.
func TestGCDeleteDuringPushTransactionFailsThePush(t *testing.T) {
	f := newFixture(t)
	cfg := f.blob("team/a", "config")
	l := f.blob("team/a", "layer")
	f.clk.Advance(2 * time.Hour)
	m, err := oci.ParseManifest(oci.MediaTypeOCIManifest, imageManifest(cfg, l))
	if err != nil {
		t.Fatal(err)
	}
	inTxn, collected := make(chan struct{}), make(chan struct{})
	var attempts atomic.Int32
	done := make(chan error)
	go func() {
		done <- f.idx.Update(context.Background(), func(tx index.Txn) error {
			n := attempts.Add(1)
			err := f.s.checkReferences(tx, "team/a", m, true)
			if n == 1 {
				close(inTxn)
				<-collected
			}
			return err
		})
	}()
	<-inTxn
	rep := f.gc(GCOptions{})
	close(collected)
	err = <-done
	if rep.BlobsFreed != 2 {
		t.Errorf("GC: %+v", rep)
	}
	if !errors.Is(err, oci.ErrManifestBlobUnknown) || attempts.Load() != 2 {
		t.Errorf("push: %v after %d attempts; want MANIFEST_BLOB_UNKNOWN on the retry", err, attempts.Load())
	}
	f.consistent()
}

// Pushes (some sharing layers, some deleting what they pushed) while GC
// runs back to back with no grace: every manifest that was pushed and not
// deleted has all its blobs, and every record its file.
func TestGCConcurrentWithPushes(t *testing.T) {
	f := newFixture(t)
	f.s.now = time.Now
	ctx := context.Background()
	const pushers, images = 6, 15
	var (
		mu    sync.Mutex
		alive = map[oci.Digest]string{}
		fails atomic.Int32
	)
	stop := make(chan struct{})
	gcDone := make(chan int)
	go func() {
		runs := 0
		for {
			select {
			case <-stop:
				gcDone <- runs
				return
			default:
			}
			if _, err := f.s.GC(ctx, GCOptions{Grace: -1}); err != nil {
				t.Errorf("GC: %v", err)
			}
			runs++
		}
	}()
	var wg sync.WaitGroup
	for p := range pushers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			repo := fmt.Sprintf("team/r%d", p%3)
			for i := range images {
				layers := []string{fmt.Sprintf("shared %d", i%4), fmt.Sprintf("own %d/%d", p, i), "base"}
				var d oci.Digest
				for try := 0; ; try++ {
					var descs []oci.Descriptor
					for _, c := range append([]string{fmt.Sprintf("config %d/%d", p, i)}, layers...) {
						b := []byte(c)
						desc := oci.Descriptor{MediaType: mtLayer, Digest: oci.FromBytes(b), Size: int64(len(b))}
						// Like a client: upload only what the repository lacks.
						if _, err := f.s.StatBlob(ctx, repo, desc.Digest); err != nil {
							if err := f.s.PutBlob(ctx, repo, desc.Digest, desc.Size, bytes.NewReader(b)); err != nil {
								t.Errorf("upload: %v", err)
								return
							}
						}
						descs = append(descs, desc)
					}
					var err error
					d, err = f.put(repo, fmt.Sprintf("p%d-%d", p, i), oci.MediaTypeOCIManifest, imageManifest(descs[0], descs[1:]...))
					if err == nil {
						break
					}
					if !errors.Is(err, oci.ErrManifestBlobUnknown) || try > 20 {
						t.Errorf("push: %v", err)
						return
					}
					fails.Add(1)
				}
				mu.Lock()
				alive[d] = repo
				mu.Unlock()
				if i%3 == 2 { // delete one in three again: garbage for GC
					if err := f.s.DeleteManifest(ctx, repo, oci.Reference{Digest: d}); err != nil && !errors.Is(err, oci.ErrManifestUnknown) {
						t.Errorf("delete: %v", err)
					}
					mu.Lock()
					delete(alive, d)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	runs := <-gcDone
	t.Logf("%d GC runs; %d pushes failed with MANIFEST_BLOB_UNKNOWN and were retried; %d images left", runs, fails.Load(), len(alive))
	for d, repo := range alive {
		if err := f.pullable(repo, d); err != nil {
			t.Error(err)
		}
	}
	f.consistent()
	// And the garbage does go, sooner or later.
	time.Sleep(time.Millisecond)
	f.gc(GCOptions{Grace: -1})
	var marked int
	f.idx.View(func(tx index.Txn) error {
		m, err := mark(tx, f.s.readManifest, proxiedFunc(nil))
		marked = len(m.all)
		return err
	})
	var records int
	f.idx.View(func(tx index.Txn) error { return tx.EachBlob(func(index.BlobRecord) error { records++; return nil }) })
	if records != marked {
		t.Errorf("%d blob records left, %d referenced", records, marked)
	}
	for d, repo := range alive {
		if err := f.pullable(repo, d); err != nil {
			t.Error(err)
		}
	}
}
