package model

import (
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wharf-registry/wharf/cache"
	"github.com/wharf-registry/wharf/oci"
	"github.com/wharf-registry/wharf/server"
)

func TestLifecycle(t *testing.T) {
	for _, c := range []struct {
		name    string
		from    Lifecycle
		act     Action
		detail  string
		want    Lifecycle
		wantErr string
	}{
		{"first start", Lifecycle{}, ActStart, "", Lifecycle{Phase: Starting}, ""},
		{"start from stopped", Lifecycle{Phase: Stopped}, ActStart, "", Lifecycle{Phase: Starting}, ""},
		{"retry after failure clears the reason", Lifecycle{Phase: Failed, Reason: "port in use"}, ActStart, "", Lifecycle{Phase: Starting}, ""},
		{"started", Lifecycle{Phase: Starting}, ActStarted, "[::]:5000", Lifecycle{Phase: Running, Addr: "[::]:5000"}, ""},
		{"start failed", Lifecycle{Phase: Starting}, ActStartFailed, "listening on :5000: address already in use", Lifecycle{Phase: Failed, Reason: "listening on :5000: address already in use"}, ""},
		{"stop keeps the address until stopped", Lifecycle{Phase: Running, Addr: ":5000"}, ActStop, "", Lifecycle{Phase: Stopping, Addr: ":5000"}, ""},
		{"stopped", Lifecycle{Phase: Stopping, Addr: ":5000"}, ActStopped, "", Lifecycle{Phase: Stopped}, ""},
		{"stop failed", Lifecycle{Phase: Stopping}, ActStopFailed, "index: close", Lifecycle{Phase: Failed, Reason: "stopped with an error: index: close"}, ""},
		{"double start", Lifecycle{Phase: Starting}, ActStart, "", Lifecycle{Phase: Starting}, "cannot start while the server is starting"},
		{"start while running", Lifecycle{Phase: Running, Addr: ":1"}, ActStart, "", Lifecycle{Phase: Running, Addr: ":1"}, "cannot start while the server is running"},
		{"stop while stopped", Lifecycle{}, ActStop, "", Lifecycle{}, "cannot stop while the server is stopped"},
		{"stop while starting", Lifecycle{Phase: Starting}, ActStop, "", Lifecycle{Phase: Starting}, "cannot stop while the server is starting"},
		{"late started", Lifecycle{Phase: Stopped}, ActStarted, ":1", Lifecycle{Phase: Stopped}, "cannot started while the server is stopped"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.from.Apply(c.act, c.detail)
			if got != c.want {
				t.Errorf("Apply = %+v, want %+v", got, c.want)
			}
			if (err == nil) != (c.wantErr == "") || err != nil && err.Error() != c.wantErr {
				t.Errorf("err = %v, want %q", err, c.wantErr)
			}
		})
	}
}

func TestLifecycleButtonsAndTitle(t *testing.T) {
	for _, c := range []struct {
		l                 Lifecycle
		start, stop, busy bool
		title             string
	}{
		{Lifecycle{}, true, false, false, "Stopped"},
		{Lifecycle{Phase: Stopped}, true, false, false, "Stopped"},
		{Lifecycle{Phase: Starting}, false, false, true, "Starting…"},
		{Lifecycle{Phase: Running, Addr: "[::]:5000"}, false, true, false, "Running on port 5000, every address"},
		{Lifecycle{Phase: Running, Addr: "127.0.0.1:5000"}, false, true, false, "Running on 127.0.0.1:5000"},
		{Lifecycle{Phase: Stopping}, false, false, true, "Stopping…"},
		{Lifecycle{Phase: Failed, Reason: "config: line 3: unknown key"}, true, false, false, "Not running: it failed"},
	} {
		if c.l.CanStart() != c.start || c.l.CanStop() != c.stop || c.l.Busy() != c.busy || c.l.Title() != c.title {
			t.Errorf("%+v: start %v stop %v busy %v title %q; want %v %v %v %q", c.l, c.l.CanStart(), c.l.CanStop(), c.l.Busy(), c.l.Title(), c.start, c.stop, c.busy, c.title)
		}
	}
}

func TestFormat(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{Bytes(0), "0 B"},
		{Bytes(1023), "1023 B"},
		{Bytes(1024), "1.0 KiB"},
		{Bytes(1536), "1.5 KiB"},
		{Bytes(20 << 30), "20.0 GiB"},
		{Bytes(5 << 40), "5.0 TiB"},
		{Bytes(-2048), "-2.0 KiB"},
		{Percent(0), "0%"},
		{Percent(0.004), "<1%"},
		{Percent(0.75), "75%"},
		{Percent(0.999), ">99%"},
		{Percent(1), "100%"},
		{Duration(0), "0s"},
		{Duration(-time.Second), "0s"},
		{Duration(45*time.Second + 300*time.Millisecond), "45s"},
		{Duration(3*time.Minute + 2*time.Second), "3m 02s"},
		{Duration(2*time.Hour + 5*time.Minute + 59*time.Second), "2h 05m"},
		{Duration(76 * time.Hour), "3d 4h"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func ratio(f float64) *float64 { return &f }

func TestFiguresOf(t *testing.T) {
	for _, c := range []struct {
		name string
		r    server.Report
		want Figures
	}{
		{
			name: "fresh server",
			r:    server.Report{State: server.StateRunning, ServedBytes: map[string]int64{}, Proxies: []server.ProxyReport{{Name: "hub"}}},
			want: Figures{HitRatio: "no proxied pulls yet", Answers: "0 hits · 0 misses · 0 stale", FromCache: "0 B", Upstream: "0 B", Hosted: "0 B",
				Storage: "0 B, no size budget (cache.max_size)", RateLimit: "no upstream has reported a pull limit yet", Uptime: "0s"},
		},
		{
			name: "after pulls, with a budget and a Docker Hub quota",
			r: server.Report{
				State: server.StateRunning, UptimeSeconds: 3725,
				Cache:       server.CacheReport{Hits: 3, Misses: 1, HitRatio: ratio(0.75)},
				ServedBytes: map[string]int64{"hit": 3 << 20, "stale": 1 << 20, "miss": 1 << 20, "hosted": 512},
				Proxies: []server.ProxyReport{
					{Name: "hub", FetchedBytes: 1 << 20, RateLimit: &server.RateLimitReport{Limit: 100, Remaining: 87, WindowSeconds: 21600}},
					{Name: "ghcr", FetchedBytes: 1 << 20, RateLimit: &server.RateLimitReport{Limit: -1, Remaining: 12}},
					{Name: "quay", RateLimit: &server.RateLimitReport{Limit: -1, Remaining: -1}},
				},
				Budget: server.BudgetReport{MaxBytes: 8 << 20, UsedBytes: 2 << 20},
			},
			want: Figures{HitRatio: "75%", Answers: "3 hits · 1 miss · 0 stale", FromCache: "4.0 MiB", Upstream: "2.0 MiB", Hosted: "512 B",
				Storage: "2.0 MiB of 8.0 MiB (25%)", StorageFill: 0.25, RateLimit: "hub: 87 of 100 pulls left per 6h; ghcr: 12 pulls left", Uptime: "1h 02m"},
		},
		{
			name: "over budget, stopped",
			r:    server.Report{State: server.StateStopped, Budget: server.BudgetReport{MaxBytes: 1 << 20, UsedBytes: 3 << 20}},
			want: Figures{HitRatio: "no proxied pulls yet", Answers: "0 hits · 0 misses · 0 stale", FromCache: "0 B", Upstream: "0 B", Hosted: "0 B",
				Storage: "3.0 MiB of 1.0 MiB (100%)", StorageFill: 1, RateLimit: "no upstream has reported a pull limit yet", Uptime: "—"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := FiguresOf(c.r); got != c.want {
				t.Errorf("FiguresOf =\n%+v\nwant\n%+v", got, c.want)
			}
		})
	}
}

func TestRecent(t *testing.T) {
	at := time.Date(2026, 12, 2, 21, 0, 0, 0, time.UTC)
	r := Recent{Max: 3}
	for _, c := range []struct {
		e    server.Event
		kept bool
	}{
		{server.Event{Time: at, Type: "pull", Repo: "library/alpine", Reference: "3.20", Source: "miss", Bytes: 1000}, true},
		{server.Event{Time: at, Type: "resolve", Repo: "library/alpine", Reference: "3.20", Source: "hit"}, false},
		{server.Event{Time: at, Type: "push", Repo: "local/app", Reference: "v1", Bytes: 700}, true},
		{server.Event{Time: at, Type: "error", Repo: "library/x", Reference: "1"}, false},
		{server.Event{Time: at.Add(time.Second), Type: "pull", Repo: "local/app", Reference: "sha256:0123456789abcdef0123", Bytes: 700}, true},
		{server.Event{Time: at.Add(2 * time.Second), Type: "pull", Repo: "library/alpine", Reference: "3.20", Source: "hit", Bytes: 1000}, true},
	} {
		if got := r.Add(c.e); got != c.kept {
			t.Errorf("Add(%s %s) = %v, want %v", c.e.Type, c.e.Repo, got, c.kept)
		}
	}
	var got []string
	for _, row := range r.Rows() {
		got = append(got, row.Text())
	}
	want := []string{
		"21:00:02  pull  hit     library/alpine:3.20",
		"21:00:01  pull  hosted  local/app@sha256:0123456789ab",
		"21:00:00  push  hosted  local/app:v1",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rows =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestTransfers(t *testing.T) {
	d := oci.Digest("sha256:abcdef0123456789abcdef")
	got := Transfers([]server.Transfer{
		{Proxy: "hub", Transfer: cache.Transfer{Repo: "library/big", Digest: d, Size: 4 << 20, Received: 1 << 20}},
		{Proxy: "hub", Transfer: cache.Transfer{Repo: "library/big", Digest: d, Size: -1, Received: 512, Joined: 2}},
	})
	want := []TransferRow{
		{Label: "hub/library/big@sha256:abcdef012345", Fraction: 0.25, Detail: "1.0 MiB of 4.0 MiB"},
		{Label: "hub/library/big@sha256:abcdef012345", Fraction: -1, Detail: "512 B so far, shared with 2 more"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Transfers =\n%+v\nwant\n%+v", got, want)
	}
}

func TestSeriesSumsAcrossRestarts(t *testing.T) {
	at := time.Unix(0, 0)
	s := Series{Max: 4}
	for i, v := range []int64{0, 100, 250, -1, 0, 40, 40} { // -1: a restart
		if v < 0 {
			s.NewServer()
			continue
		}
		s.Observe(at.Add(time.Duration(i)*time.Second), v)
	}
	var got []int64
	for _, p := range s.Points() {
		got = append(got, p.Bytes)
	}
	if want := []int64{250, 250, 290, 290}; !reflect.DeepEqual(got, want) {
		t.Errorf("points = %v, want %v (the oldest dropped beyond Max)", got, want)
	}
	if s.Total() != 290 {
		t.Errorf("Total = %d, want 290", s.Total())
	}
	if first := s.Points()[0].T; !first.Equal(at.Add(2 * time.Second)) {
		t.Errorf("oldest kept sample at %v", first)
	}
}

func TestClientAddresses(t *testing.T) {
	ifaces := []net.Addr{
		&net.IPNet{IP: net.ParseIP("127.0.0.1"), Mask: net.CIDRMask(8, 32)},
		&net.IPNet{IP: net.ParseIP("192.168.1.20"), Mask: net.CIDRMask(24, 32)},
		&net.IPNet{IP: net.ParseIP("10.0.0.5").To4(), Mask: net.CIDRMask(8, 32)},
		&net.IPNet{IP: net.ParseIP("::1"), Mask: net.CIDRMask(128, 128)},
		&net.IPNet{IP: net.ParseIP("fe80::1"), Mask: net.CIDRMask(64, 128)},
		&net.IPNet{IP: net.ParseIP("2001:db8::7"), Mask: net.CIDRMask(64, 128)},
	}
	all := []string{"192.168.1.20:5000", "10.0.0.5:5000", "[2001:db8::7]:5000"}
	for _, c := range []struct {
		listen string
		want   []string
	}{
		{"[::]:5000", all},
		{"0.0.0.0:5000", all},
		{":5000", all},
		{"127.0.0.1:5000", []string{"127.0.0.1:5000"}},
		{"192.168.1.20:5000", []string{"192.168.1.20:5000"}},
		{"registry.lan:5000", []string{"registry.lan:5000"}},
		{"garbage", nil},
	} {
		if got := ClientAddresses(c.listen, ifaces); !reflect.DeepEqual(got, c.want) {
			t.Errorf("ClientAddresses(%q) = %v, want %v", c.listen, got, c.want)
		}
	}
}

func TestRemoteTexts(t *testing.T) {
	const url = "https://box.example.org:5000"
	for _, c := range []struct {
		life Lifecycle
		want string
	}{
		{Lifecycle{Phase: Running, Addr: "box.example.org:5000"}, "Remote wharf at " + url + ": running"},
		{Lifecycle{Phase: Failed, Reason: "x"}, "Remote wharf at " + url + ": not answering"},
		{Lifecycle{Phase: Starting}, "Connecting to " + url + "…"},
	} {
		if got := RemoteTitle(c.life, url); got != c.want {
			t.Errorf("RemoteTitle(%s) = %q, want %q", c.life.Phase, got, c.want)
		}
	}
	if got := RemoteBanner(url, "root", "1.2.3"); got != "REMOTE — managing the wharf at "+url+" as root (wharf 1.2.3). Changes here apply to that machine." {
		t.Errorf("banner %q", got)
	}
	if got := RemoteBanner(url, "root", ""); strings.Contains(got, "(wharf") {
		t.Errorf("banner before the version is known: %q", got)
	}
	for in, want := range map[string]string{url: "box.example.org:5000", "http://127.0.0.1:5000": "127.0.0.1:5000", "https://[::1]:5000": "[::1]:5000"} {
		if got := ClientAddress(in); got != want {
			t.Errorf("ClientAddress(%q) = %q, want %q", in, got, want)
		}
	}
}
