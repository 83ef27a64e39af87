package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wharf-registry/wharf/config"
	"github.com/wharf-registry/wharf/internal/adminclient"
	"github.com/wharf-registry/wharf/server"
)

const cacheUsage = `Usage: wharf cache COMMAND [flags]

Commands (they talk to the running server through its admin socket in the
data dir, so run them as the user that runs wharf):
  stats                                  usage against the budget
  ls [--sort size|last-used] [--proxy NAME] [--limit N]
                                         cached blobs
  evict IMAGE | --unused-for 30d         drop an image, or everything unused that long
  pin IMAGE                              never evict this image (and all it references)
  unpin IMAGE

Every command takes --data-dir DIR or --config FILE to find the server.
IMAGE is written as you pull it: alpine:3.20, library/alpine:3.20,
hub/library/alpine:3.20, ghcr/org/app@sha256:...
`

func cmdCache(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "--help" || args[0] == "-h" || args[0] == "help" {
		fmt.Fprint(stderr, cacheUsage)
		if len(args) == 0 {
			return usageError{errors.New("cache needs a command: stats, ls, evict, pin or unpin")}
		}
		return nil
	}
	sub, rest := args[0], args[1:]
	fs := newFlags("cache "+sub, "wharf cache "+sub+" [flags]", stderr)
	cfgPath := fs.String("config", os.Getenv("WHARF_CONFIG"), "config `file` whose data_dir the server uses")
	dataDir := fs.String("data-dir", defaultDataDir(), "the server's data `directory` (default ./data)")
	asJSON := fs.Bool("json", false, "print JSON")
	var sortBy, proxy, unused *string
	var limit *int
	switch sub {
	case "ls":
		sortBy = fs.String("sort", "last-used", "order: size or last-used")
		proxy = fs.String("proxy", "", "only this proxy's content")
		limit = fs.Int("limit", 50, "show at most `N` rows (0: all)")
	case "evict":
		unused = fs.String("unused-for", "", "evict everything not read for this `duration` (e.g. 30d, 12h)")
	case "stats", "pin", "unpin":
	default:
		fmt.Fprint(stderr, cacheUsage)
		return usageError{fmt.Errorf("unknown cache command %q", sub)}
	}
	if err := parse(fs, rest); err != nil {
		return err
	}
	c, err := adminClient(*cfgPath, *dataDir)
	if err != nil {
		return err
	}
	q := url.Values{}
	switch sub {
	case "stats":
		var st server.CacheStats
		if err := c.call(http.MethodGet, "/cache/stats", q, &st); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, st)
		}
		printStats(stdout, st)
	case "ls":
		q.Set("sort", *sortBy)
		q.Set("proxy", *proxy)
		q.Set("limit", fmt.Sprint(*limit))
		var rows []server.CacheEntry
		if err := c.call(http.MethodGet, "/cache/ls", q, &rows); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, rows)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "DIGEST\tSIZE\tLAST USED\tHITS\tPINNED\tREPOSITORIES (A MANIFEST: ITS TAGS)")
		for _, r := range rows {
			pinned := ""
			if r.Pinned {
				pinned = "yes"
			}
			where := strings.Join(r.Repos, ",")
			if len(r.Tags) > 0 { // a manifest: the images it is
				where = strings.Join(r.Tags, ",")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", short(string(r.Digest)), humanBytes(r.Size), ago(r.LastAccess), r.Hits, pinned, where)
		}
		tw.Flush()
	case "evict":
		if *unused != "" {
			if fs.NArg() > 0 {
				return usageError{errors.New("give an IMAGE or --unused-for, not both")}
			}
			q.Set("unused_for", *unused)
		} else {
			if fs.NArg() != 1 {
				return usageError{errors.New("evict needs one IMAGE, or --unused-for DURATION")}
			}
			q.Set("image", fs.Arg(0))
		}
		var rep struct {
			Blobs     int
			Bytes     int64
			UsedAfter int64
		}
		if err := c.call(http.MethodPost, "/cache/evict", q, &rep); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "evicted %d blobs (%s); proxied content now takes %s\n", rep.Blobs, humanBytes(rep.Bytes), humanBytes(rep.UsedAfter))
	case "pin", "unpin":
		if fs.NArg() != 1 {
			return usageError{fmt.Errorf("%s needs one IMAGE", sub)}
		}
		q.Set("image", fs.Arg(0))
		var res server.PinResult
		if err := c.call(http.MethodPost, "/cache/"+sub, q, &res); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%sned %s (%d digests)\n", sub, res.Image, res.Digests)
	}
	return nil
}

func printStats(w io.Writer, st server.CacheStats) {
	budget := "no limit (set cache.max_size)"
	if st.MaxSize > 0 {
		budget = fmt.Sprintf("%s (%.0f%% used; evicts above %.0f%% down to %.0f%%)", humanBytes(st.MaxSize),
			100*float64(st.ProxiedBytes)/float64(st.MaxSize), 100*st.HighWatermark, 100*st.LowWatermark)
	}
	fmt.Fprintf(w, "proxied content: %s in %d blobs\n", humanBytes(st.ProxiedBytes), st.ProxiedBlobs)
	fmt.Fprintf(w, "budget:          %s\n", budget)
	if st.MaxUnused != "" {
		fmt.Fprintf(w, "max unused:      %s\n", st.MaxUnused)
	}
	fmt.Fprintf(w, "hosted content:  %s in %d blobs (never evicted)\n", humanBytes(st.HostedBytes), st.HostedBlobs)
	fmt.Fprintf(w, "pinned digests:  %d\n", st.PinnedDigests)
	origins := make([]string, 0, len(st.Origins))
	for origin := range st.Origins {
		origins = append(origins, origin)
	}
	sort.Strings(origins)
	for _, origin := range origins {
		u := st.Origins[origin]
		line := fmt.Sprintf("  %-14s %s in %d blobs", origin+":", humanBytes(u.Bytes), u.Count)
		if pb, ok := st.ProxyBudgets[origin]; ok {
			var parts []string
			if pb.MaxSize > 0 {
				parts = append(parts, fmt.Sprintf("budget %s (%.0f%% used)", humanBytes(pb.MaxSize), 100*float64(u.Bytes)/float64(pb.MaxSize)))
			}
			if pb.MaxUnused != "" {
				parts = append(parts, "max unused "+pb.MaxUnused)
			}
			line += "; " + strings.Join(parts, ", ")
		}
		fmt.Fprintln(w, line)
	}
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func short(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t).Round(time.Second)
	switch {
	case d < time.Minute:
		return d.String() + " ago"
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

// adminClient finds the admin socket of the server using dataDir, or
// the data_dir of cfgPath.
func adminClient(cfgPath, dataDir string) (*admin, error) {
	dir := dataDir
	if dir == "" {
		dir = config.DefaultDataDir
		if cfgPath != "" {
			cfg, err := config.Load(cfgPath)
			if err != nil {
				return nil, err
			}
			dir = cfg.DataDir
		}
	}
	sock := filepath.Join(dir, server.AdminSocket)
	if _, err := os.Stat(sock); err != nil {
		return nil, fmt.Errorf("no running wharf found: %s does not exist (start the server, or pass the --data-dir or --config it uses)", sock)
	}
	return &admin{adminclient.Socket(sock)}, nil
}

// admin talks to a running server's admin socket.
type admin struct{ *adminclient.Client }

func (a *admin) call(method, path string, q url.Values, out any) error {
	return a.Call(context.Background(), method, path, q, nil, out)
}
