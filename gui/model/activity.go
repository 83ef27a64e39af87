package model

import (
	"fmt"
	"strings"
	"time"

	"github.com/wharf-registry/wharf/server"
)

// Row is one pull or push in the dashboard's list.
type Row struct {
	Time  time.Time
	Kind  string // pull or push
	Image string // repo:tag or repo@sha256:0123456789ab
	// Source is where a pull came from: hit, miss, stale (a proxy's
	// answer) or hosted; a push is always hosted.
	Source string
	Bytes  int64 // of the manifest
}

// Text is the row as one line of the list. It leaves out Bytes: an event
// counts the manifest's bytes only, not the image's.
func (r Row) Text() string {
	return fmt.Sprintf("%s  %-4s  %-6s  %s", r.Time.Format("15:04:05"), r.Kind, r.Source, r.Image)
}

// Recent keeps the newest pulls and pushes, newest first.
type Recent struct {
	Max  int
	rows []Row
}

// Add records e if it is a pull or a push and reports whether it did.
// Resolves (a HEAD: Docker asking what a tag points at) and deletes are
// not pulls; errors have their own place.
func (r *Recent) Add(e server.Event) bool {
	if e.Type != "pull" && e.Type != "push" {
		return false
	}
	row := Row{Time: e.Time, Kind: e.Type, Image: image(e.Repo, e.Reference), Source: e.Source, Bytes: e.Bytes}
	if row.Source == "" {
		row.Source = "hosted"
	}
	max := r.Max
	if max <= 0 {
		max = 50
	}
	r.rows = append([]Row{row}, r.rows...)
	if len(r.rows) > max {
		r.rows = r.rows[:max]
	}
	return true
}

// Rows returns the rows, newest first.
func (r *Recent) Rows() []Row { return r.rows }

func image(repo, ref string) string {
	if strings.Contains(ref, ":") { // a digest
		if i := strings.IndexByte(ref, ':'); len(ref) > i+13 {
			ref = ref[:i+13]
		}
		return repo + "@" + ref
	}
	return repo + ":" + ref
}

// TransferRow is one upstream fetch with its progress bar.
type TransferRow struct {
	Label string // proxy/repo and a short digest
	// Fraction is how much arrived, 0..1; -1 while the size is unknown.
	Fraction float64
	Detail   string // "512.0 KiB of 2.0 MiB"
}

// Transfers turns the server's fetches under way into rows.
func Transfers(ts []server.Transfer) []TransferRow {
	out := make([]TransferRow, 0, len(ts))
	for _, t := range ts {
		row := TransferRow{Label: t.Proxy + "/" + image(t.Repo, t.Digest.String()), Fraction: -1, Detail: Bytes(t.Received) + " so far"}
		if t.Size > 0 {
			row.Fraction = min(float64(t.Received)/float64(t.Size), 1)
			row.Detail = Bytes(t.Received) + " of " + Bytes(t.Size)
		}
		if t.Joined > 0 {
			row.Detail += fmt.Sprintf(", shared with %d more", t.Joined)
		}
		out = append(out, row)
	}
	return out
}
