package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"text/tabwriter"
	"time"

	"github.com/wharf-registry/wharf/config"
	"github.com/wharf-registry/wharf/server"
)

const gcSynopsis = `wharf gc [--dry-run] [--grace 1h] [--data-dir DIR | --config FILE] [--json]

Collects garbage in hosted repositories now: blobs that no manifest
references any more (after manifests or tags were deleted) and blob links
no manifest of their repository uses. The running server does it, through
its admin socket, while it keeps serving and taking pushes. Manifests are
never deleted, tagged or not; delete them with the registry API first.
Content uploaded or referenced within the grace period is kept, which
protects pushes in progress.`

// gcListed is how many freed blobs and removed links are printed.
const gcListed = 20

func cmdGC(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("gc", gcSynopsis, stderr)
	cfgPath := fs.String("config", os.Getenv("WHARF_CONFIG"), "config `file` whose data_dir the server uses")
	dataDir := fs.String("data-dir", defaultDataDir(), "the server's data `directory` (default ./data)")
	dryRun := fs.Bool("dry-run", false, "report what would be freed; change nothing")
	grace := fs.String("grace", "", "keep content uploaded or referenced within this `duration` (default: gc.grace of the server's config, 1h)")
	asJSON := fs.Bool("json", false, "print the full report as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("gc takes no arguments (got %q)", fs.Arg(0))}
	}
	q := url.Values{}
	if *dryRun {
		q.Set("dry_run", "1")
	}
	if *grace != "" {
		d, err := config.ParseDuration(*grace)
		if err != nil || d < 0 {
			return usageError{fmt.Errorf("--grace: %q is not a duration like 1h, 30m or 0s", *grace)}
		}
		q.Set("grace", d.String())
	}
	c, err := adminClient(*cfgPath, *dataDir)
	if err != nil {
		return err
	}
	var rep server.GCReport
	if err := c.call(http.MethodPost, "/gc", q, &rep); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, rep)
	}
	printGC(stdout, rep)
	return nil
}

func printGC(w io.Writer, rep server.GCReport) {
	verb, removed, returned, linksHead := "freed", "removed", "returned", "removed links no manifest of their repository uses:"
	if rep.DryRun {
		verb, removed, returned, linksHead = "would free", "would remove", "would return", "links no manifest of their repository uses (would be removed):"
	}
	if len(rep.Freed) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "BLOB\tSIZE\tMEDIA TYPE")
		for i, b := range rep.Freed {
			if i == gcListed {
				fmt.Fprintf(tw, "... and %d more\t\t\n", rep.BlobsFreed-gcListed)
				break
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", b.Digest, humanBytes(b.Size), b.MediaType)
		}
		tw.Flush()
	}
	if len(rep.Unlinked) > 0 {
		fmt.Fprintln(w, linksHead)
		for i, l := range rep.Unlinked {
			if i == gcListed {
				fmt.Fprintf(w, "  ... and %d more\n", rep.LinksRemoved-gcListed)
				break
			}
			fmt.Fprintf(w, "  %s@%s\n", l.Repo, l.Digest)
		}
	}
	fmt.Fprintf(w, "%s %d blobs (%s); %s %d unreferenced links", verb, rep.BlobsFreed, humanBytes(rep.BytesFreed), removed, rep.LinksRemoved)
	if rep.ReturnedToCache > 0 {
		fmt.Fprintf(w, "; %s %d blobs only proxies use to the cache", returned, rep.ReturnedToCache)
	}
	fmt.Fprintf(w, "\nchecked %d manifests in %d hosted repositories in %s (grace %s)\n",
		rep.Manifests, rep.Repositories, rep.Duration.Round(time.Millisecond), rep.Grace)
	if rep.Kept > 0 {
		fmt.Fprintf(w, "kept %d blobs or links that were used while collecting; the next run looks again\n", rep.Kept)
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(w, "PROBLEM %s\n", p)
	}
	if len(rep.Problems) > 0 {
		fmt.Fprintln(w, "no blob was deleted while a manifest cannot be read")
	}
	if rep.DryRun {
		fmt.Fprintln(w, "dry run: nothing was changed")
	}
}
