package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/wharf-registry/wharf/config"
	"github.com/wharf-registry/wharf/server"
)

func cmdMigrate(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("migrate", `wharf migrate --to-config FILE [--data-dir DIR]

Copies a single-box data dir (blob files and the Badger index) into the
bucket (storage.s3) and the PostgreSQL database (index.postgres) of the
cluster config FILE: every blob, streamed and verified on its way into the
bucket, then every index record (blobs with their origin, last access and
hits, links, manifests, tags, referrers, pins, tag checks) in batches.
Upload sessions are not copied: clients start those again.

The server using DIR must be stopped (the data dir lock says so); the
cluster's replicas may run. What the bucket or the database already has is
left as it is, so running it again copies nothing new, and an interrupted
run resumes where it stopped. The blobs and records of DIR stay where they
are: the single box can start on DIR again if the cluster is given up.`, stderr)
	to := fs.String("to-config", "", "cluster config `file` (with storage.s3 and index.postgres) to copy into")
	dataDir := fs.String("data-dir", defaultDataDir(), "single-box data `directory` to copy from (env WHARF_DATA_DIR; default ./data)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("migrate takes no arguments (got %q)", fs.Arg(0))}
	}
	if *to == "" {
		return usageError{errors.New("migrate needs --to-config FILE, the cluster's config")}
	}
	cfg, err := config.Load(*to)
	if err != nil {
		return err
	}
	if !cfg.Clustered() {
		return usageError{fmt.Errorf("%s has no storage.s3 and index.postgres: not a cluster config", *to)}
	}
	dir := *dataDir
	if dir == "" {
		dir = config.DefaultDataDir
	}
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("data dir %s: %w", dir, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	bar := newProgress(stderr, "copying blobs")
	rep, err := server.Migrate(ctx, dir, cfg, nil, func(done, total int64, n, ntotal int) {
		bar.line(done, total, fmt.Sprintf(", %d / %d blobs", n, ntotal))
	})
	bar.done()
	fmt.Fprintf(stdout, "blobs: %d in %s (%s): %d copied (%s), %d already in bucket %s\n",
		rep.Blobs, dir, humanBytes(rep.Bytes), rep.BlobsCopied, humanBytes(rep.BytesCopied), rep.BlobsPresent, cfg.Storage.S3.Bucket)
	var kinds []string
	for k := range rep.Records {
		kinds = append(kinds, k)
	}
	for k := range rep.Present {
		if !slices.Contains(kinds, k) {
			kinds = append(kinds, k)
		}
	}
	slices.Sort(kinds)
	var parts []string
	written := 0
	for _, k := range kinds {
		parts = append(parts, fmt.Sprintf("%s %d written, %d already there", k, rep.Records[k], rep.Present[k]))
		written += rep.Records[k]
	}
	if len(parts) > 0 {
		fmt.Fprintf(stdout, "index records: %s\n", strings.Join(parts, "; "))
	}
	if rep.Orphans > 0 {
		fmt.Fprintf(stdout, "not copied: %d blob records whose file is gone ('wharf fsck --repair' drops them)\n", rep.Orphans)
	}
	if rep.Uploads > 0 {
		fmt.Fprintf(stdout, "not copied: %d unfinished upload sessions (clients push those again)\n", rep.Uploads)
	}
	if err != nil {
		return fmt.Errorf("migration stopped (run it again to resume): %w", err)
	}
	if rep.BlobsCopied == 0 && written == 0 {
		fmt.Fprintln(stdout, "nothing to copy: the cluster already has everything")
	} else {
		fmt.Fprintf(stdout, "done: %s is in the cluster; start the replicas with %s\n", dir, *to)
	}
	return nil
}
