package model

import (
	"reflect"
	"testing"
	"time"

	"github.com/wharf-registry/wharf/server"
)

func TestCachedRepos(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	entries := []server.CacheEntry{
		{Origin: "hub", Size: 100, LastAccess: t0, Repos: []string{"hub/library/alpine"}},
		{Origin: "hub", Size: 50, LastAccess: t0.Add(time.Hour), Pinned: true, Repos: []string{"hub/library/alpine", "hub/library/golang"}},
		{Origin: "ghcr", Size: 7, LastAccess: t0, Repos: nil},
		{Origin: "hub", Size: 1, LastAccess: t0.Add(-time.Hour), Repos: []string{"hub/library/busybox"}},
		{Origin: "hub", Size: 2, LastAccess: t0.Add(-time.Hour), Repos: []string{"hub/library/busybox"}, Tags: []string{"hub/library/busybox:latest", "hub/library/busybox:1.36"}},
		{Origin: "hub", Size: 3, LastAccess: t0.Add(-time.Hour), Repos: []string{"hub/library/busybox"}, Tags: []string{"hub/library/busybox:latest"}},
	}
	want := []CachedRepo{
		{Proxy: "ghcr", Repo: "(unlinked)", Blobs: 1, Bytes: 7, LastUse: t0},
		// golang and alpine were both used an hour later: by name.
		{Proxy: "hub", Repo: "hub/library/alpine", Blobs: 2, Bytes: 150, LastUse: t0.Add(time.Hour), Pinned: 1},
		{Proxy: "hub", Repo: "hub/library/golang", Blobs: 1, Bytes: 50, LastUse: t0.Add(time.Hour), Pinned: 1},
		{Proxy: "hub", Repo: "hub/library/busybox", Blobs: 3, Bytes: 6, LastUse: t0.Add(-time.Hour), Tags: []string{"1.36", "latest"}},
	}
	if got := CachedRepos(entries); !reflect.DeepEqual(got, want) {
		t.Errorf("CachedRepos:\n got %+v\nwant %+v", got, want)
	}
	if got, w := want[1].Text(t0.Add(3*time.Hour)), "hub/library/alpine  ·  2 blobs, 150 B  ·  used 2h 00m ago  ·  1 pinned"; got != w {
		t.Errorf("Text = %q, want %q", got, w)
	}
	if got, w := want[3].Text(t0), "hub/library/busybox  ·  3 blobs, 6 B  ·  used 1h 00m ago  ·  tags 1.36, latest"; got != w {
		t.Errorf("Text = %q, want %q", got, w)
	}
	if got := CachedRepos(nil); len(got) != 0 {
		t.Errorf("nothing cached: %v", got)
	}
}

func TestCacheTexts(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{CacheSummary(server.CacheStats{ProxiedBytes: 3 << 20, ProxiedBlobs: 4, PinnedDigests: 1}), "3.0 MiB in 4 cached blobs, 1 pinned"},
		{CacheSummary(server.CacheStats{MaxSize: 20 << 30, HostedBytes: 2048, HostedBlobs: 2}), "0 B in 0 cached blobs, 0 pinned; budget 20.0 GiB; hosted pushes 2.0 KiB in 2 blobs"},
		{GCText(server.GCReport{DryRun: true, BlobsFreed: 2, BytesFreed: 4096, LinksRemoved: 1, Manifests: 3, Repositories: 1}),
			"Would free 2 blobs (4.0 KiB), would remove 1 unreferenced links; 3 hosted manifests in 1 repositories checked"},
		{GCText(server.GCReport{ReturnedToCache: 1, Problems: []string{"team/app: manifest unreadable"}}),
			"Freed 0 blobs (0 B), removed 0 unreferenced links; 0 hosted manifests in 0 repositories checked; 1 blobs go back to the proxy cache\nteam/app: manifest unreadable"},
	} {
		if c.got != c.want {
			t.Errorf("got  %q\nwant %q", c.got, c.want)
		}
	}
}
