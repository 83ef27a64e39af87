package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wharf-registry/wharf/server"
)

const statusSynopsis = `wharf status [--url URL | --config FILE] [--json]

Summarises a running wharf: uptime, cache hit ratio, bytes served from the
cache and from upstreams, storage against budget, upstream health and
rate-limit headroom. It reads GET URL/-/status.`

func cmdStatus(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("status", statusSynopsis, stderr)
	url := fs.String("url", os.Getenv("WHARF_URL"), "the server's `URL` (env WHARF_URL; default from --config's listen, else http://127.0.0.1:5000)")
	cfgPath := fs.String("config", os.Getenv("WHARF_CONFIG"), "config `file` whose listen address to ask")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	timeout := fs.Duration("timeout", 10*time.Second, "give up after this `long`")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("status takes no arguments (got %q); did you mean --url %s?", fs.Arg(0), fs.Arg(0))}
	}
	base, hc, err := serverClient(*url, *cfgPath)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	raw, err := fetchStatus(ctx, hc, base+"/-/status")
	if err != nil {
		return err
	}
	if *asJSON {
		_, err := stdout.Write(raw)
		return err
	}
	var r server.Report
	if err := json.Unmarshal(raw, &r); err != nil {
		return fmt.Errorf("%s/-/status: not a wharf status report: %w", base, err)
	}
	printReport(stdout, r, time.Now())
	return nil
}

// dialable turns a listen address into one to connect to: all
// interfaces become loopback.
func dialable(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func fetchStatus(ctx context.Context, hc *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("bad --url: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("%s did not answer in time", url)
		}
		return nil, fmt.Errorf("cannot reach wharf: %w (is it running? pass --url)", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s; is this a wharf server?", url, resp.Status)
	}
	return b, nil
}

// printReport writes the report for a person.
func printReport(w io.Writer, r server.Report, now time.Time) {
	fmt.Fprintf(w, "wharf %s on %s: %s", r.Version, r.Addr, r.State)
	if r.UptimeSeconds > 0 {
		fmt.Fprintf(w, ", up %s", humanDuration(time.Duration(r.UptimeSeconds*float64(time.Second))))
	}
	fmt.Fprintln(w)
	if r.Error != "" {
		fmt.Fprintf(w, "last error: %s\n", r.Error)
	}
	if r.MetricsAddr != "" && r.MetricsAddr != r.Addr {
		fmt.Fprintf(w, "metrics on %s\n", r.MetricsAddr)
	}
	fmt.Fprintln(w)

	var table strings.Builder
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	c := r.Cache
	joined := ""
	if c.Coalesced > 0 {
		joined = fmt.Sprintf("; %s clients joined a fetch under way", count(c.Coalesced))
	}
	fmt.Fprintf(tw, "Cache\t%s hits, %s misses, %s stale\thit ratio %s%s\n", count(c.Hits), count(c.Misses), count(c.Stale), ratio(c.HitRatio), joined)
	fromCache := r.ServedBytes["hit"] + r.ServedBytes["stale"]
	fmt.Fprintf(tw, "Served\t%s from the cache, %s from upstreams\t%s hosted\n",
		humanBytes(fromCache), humanBytes(r.ServedBytes["miss"]), humanBytes(r.ServedBytes["hosted"]))
	for i, s := range r.Storage {
		label := ""
		if i == 0 {
			label = "Storage"
		}
		kind := "never evicted"
		if s.Proxied {
			kind = "evictable"
		}
		fmt.Fprintf(tw, "%s\t%s: %s in %s blobs\t%s\n", label, s.Owner, humanBytes(s.Bytes), count(s.Blobs), kind)
	}
	if b := r.Budget; b.MaxBytes > 0 {
		evicted := ""
		if b.Evictions > 0 {
			evicted = fmt.Sprintf("; evicted %s blobs, %s", count(b.Evictions), humanBytes(b.EvictedBytes))
		}
		fmt.Fprintf(tw, "Budget\t%s of %s used by the cache (%.0f%%)\tevicts above %.0f%%%s\n",
			humanBytes(b.UsedBytes), humanBytes(b.MaxBytes), 100*float64(b.UsedBytes)/float64(b.MaxBytes), 100*b.HighWatermark, evicted)
	} else {
		fmt.Fprintf(tw, "Budget\tnone: the cache holds %s\tset cache.max_size to bound it\n", humanBytes(b.UsedBytes))
	}
	if e := r.IndexEntries; e != nil {
		asOf := ""
		if r.IndexAsOf != nil && now.Sub(*r.IndexAsOf) >= 5*time.Second {
			asOf = fmt.Sprintf("counted %s ago", humanDuration(now.Sub(*r.IndexAsOf)))
		}
		fmt.Fprintf(tw, "Index\t%s blobs, %s manifests, %s tags\t%s\n", count(e["blob"]), count(e["manifest"]), count(e["tag"]), asOf)
	}
	if r.UploadsInProgress > 0 {
		fmt.Fprintf(tw, "Uploads\t%d in progress\t\n", r.UploadsInProgress)
	}
	tw.Flush()
	for line := range strings.Lines(table.String()) {
		fmt.Fprintln(w, strings.TrimRight(line, " \n"))
	}
	printReplicas(w, r.Replicas, now)

	if len(r.Proxies) == 0 {
		fmt.Fprintln(w, "\nNo proxies configured.")
		return
	}
	fmt.Fprintln(w, "\nUpstreams")
	for _, p := range r.Proxies {
		def := ""
		if p.Default {
			def = " (default)"
		}
		fmt.Fprintf(w, "  %s → %s%s: %s\n", p.Name, p.Upstream, def, healthLine(p, now))
		fmt.Fprintf(w, "    cache: %s hits, %s misses, %s stale, hit ratio %s\n", count(p.Cache.Hits), count(p.Cache.Misses), count(p.Cache.Stale), ratio(p.Cache.HitRatio))
		fmt.Fprintf(w, "    traffic: %s requests, %s received", count(p.UpstreamRequests), humanBytes(p.FetchedBytes))
		if len(p.UpstreamErrors) > 0 {
			fmt.Fprintf(w, ", errors: %s", errorList(p.UpstreamErrors))
		}
		fmt.Fprintln(w)
		if rl := p.RateLimit; rl != nil {
			fmt.Fprintf(w, "    rate limit: %s (reported %s ago)\n", rateLine(*rl), humanDuration(now.Sub(rl.Seen)))
		}
		if p.Evictions > 0 {
			fmt.Fprintf(w, "    evicted: %s blobs, %s\n", count(p.Evictions), humanBytes(p.EvictedBytes))
		}
	}
}

// printReplicas lists a cluster's replicas alive (none in single-box mode).
func printReplicas(w io.Writer, rs []server.ReplicaReport, now time.Time) {
	if len(rs) == 0 {
		return
	}
	fmt.Fprintf(w, "\nReplicas (%d seen in the last 30s)\n", len(rs))
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, r := range rs {
		self := ""
		if r.Self {
			self = "this one"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\tup %s, seen %s ago\t%s\n", r.Addr, r.ID, r.Version,
			humanDuration(now.Sub(r.Started)), humanDuration(max(now.Sub(r.LastSeen), 0)), self)
	}
	tw.Flush()
	for line := range strings.Lines(b.String()) {
		fmt.Fprintln(w, strings.TrimRight(line, " \n"))
	}
}

func healthLine(p server.ProxyReport, now time.Time) string {
	switch p.Health {
	case server.HealthUnknown:
		return "no traffic yet"
	case server.HealthOK:
		if p.LastSuccess != nil {
			return fmt.Sprintf("ok (last answer %s ago)", humanDuration(now.Sub(*p.LastSuccess)))
		}
		return "ok"
	}
	s := strings.ToUpper(p.Health)
	if p.LastFailure != nil {
		s += fmt.Sprintf(" (%s %s ago", strings.ReplaceAll(p.LastError, "_", " "), humanDuration(now.Sub(*p.LastFailure)))
		if p.LastSuccess != nil {
			s += fmt.Sprintf("; last good answer %s ago", humanDuration(now.Sub(*p.LastSuccess)))
		}
		s += ")"
	}
	return s
}

func rateLine(rl server.RateLimitReport) string {
	var s string
	switch {
	case rl.Remaining >= 0 && rl.Limit > 0:
		s = fmt.Sprintf("%d of %d pulls left (%.0f%%)", rl.Remaining, rl.Limit, 100*float64(rl.Remaining)/float64(rl.Limit))
	case rl.Remaining >= 0:
		s = fmt.Sprintf("%d pulls left", rl.Remaining)
	default:
		s = fmt.Sprintf("limit %d pulls", rl.Limit)
	}
	if rl.WindowSeconds > 0 {
		s += " per " + humanDuration(time.Duration(rl.WindowSeconds*float64(time.Second)))
	}
	return s
}

func errorList(m map[string]int64) string {
	classes := make([]string, 0, len(m))
	for c := range m {
		classes = append(classes, c)
	}
	sort.Slice(classes, func(i, j int) bool {
		return m[classes[i]] > m[classes[j]] || m[classes[i]] == m[classes[j]] && classes[i] < classes[j]
	})
	parts := make([]string, 0, len(classes))
	for _, c := range classes {
		parts = append(parts, fmt.Sprintf("%s %s", count(m[c]), strings.ReplaceAll(c, "_", " ")))
	}
	return strings.Join(parts, ", ")
}

func ratio(r *float64) string {
	if r == nil {
		return "n/a"
	}
	return fmt.Sprintf("%.1f%%", *r*100)
}

// count writes 1234567 as 1,234,567.
func count(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

// humanDuration writes the two largest units: 3d4h, 6h, 2h5m, 4m10s, 12s.
func humanDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	d = d.Round(time.Second)
	parts := []struct {
		n    int
		unit string
	}{
		{int(d / (24 * time.Hour)), "d"}, {int(d/time.Hour) % 24, "h"},
		{int(d/time.Minute) % 60, "m"}, {int(d/time.Second) % 60, "s"},
	}
	for i, p := range parts {
		if p.n == 0 && i < len(parts)-1 {
			continue
		}
		s := fmt.Sprintf("%d%s", p.n, p.unit)
		if i+1 < len(parts) && parts[i+1].n > 0 {
			s += fmt.Sprintf("%d%s", parts[i+1].n, parts[i+1].unit)
		}
		return s
	}
	return "0s"
}
