package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wharf-registry/wharf/cache/index/pgindex"
	"github.com/wharf-registry/wharf/hosted"
	"github.com/wharf-registry/wharf/oci"
)

// GCReport is what a garbage collection of hosted content freed, or would
// free (`wharf gc`, the schedule, the desktop app).
type GCReport = hosted.GCReport

// GCRequest asks for one garbage collection.
type GCRequest struct {
	DryRun bool
	// Grace overrides gc.grace when set; 0 means no grace at all.
	Grace *time.Duration
}

// GC collects hosted blobs that no manifest references any more, while
// the registry keeps serving and taking pushes. It logs one line, and a
// run that is not a dry run is counted in the metrics and published as a
// "gc" event. Shutdown cancels a collection and waits for it to stop.
func (s *Server) GC(ctx context.Context, req GCRequest) (GCReport, error) {
	s.mu.Lock()
	if s.state != StateRunning {
		s.mu.Unlock()
		return GCReport{}, oci.Errorf(oci.CodeUnavailable, "server is %s", s.state)
	}
	svc, stop, locks := s.hosted, s.stop, s.locks
	s.bg.Add(1) // under s.mu while running: before Shutdown's Wait
	s.mu.Unlock()
	defer s.bg.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	grace := s.cfg.GC.Grace.Std()
	if req.Grace != nil {
		grace = *req.Grace
	}
	if grace == 0 {
		grace = -1 // hosted.GCOptions: zero is the default, negative is none
	}
	proxies := make([]string, 0, len(s.cfg.Proxies))
	for _, p := range s.cfg.Proxies {
		proxies = append(proxies, p.Name)
	}
	if locks != nil && !req.DryRun {
		// In cluster mode collections run one at a time across replicas,
		// as within one.
		release, ok, err := locks.TryLock(ctx, pgindex.LockGC)
		if err != nil {
			return GCReport{}, err
		}
		if !ok {
			s.log.Info("garbage collection not started: another replica is collecting")
			return GCReport{}, hosted.ErrGCRunning
		}
		defer release()
	}
	rep, err := svc.GC(ctx, hosted.GCOptions{Grace: grace, DryRun: req.DryRun, Proxies: proxies})
	if err != nil {
		if !errors.Is(err, hosted.ErrGCRunning) {
			s.log.Warn("garbage collection stopped", "err", err, "freed_blobs", rep.BlobsFreed, "freed_bytes", rep.BytesFreed)
		}
		return rep, err
	}
	s.logGC(rep)
	if !rep.DryRun {
		s.metrics.GCRun(rep.BytesFreed)
		if rep.BlobsFreed+rep.LinksRemoved+rep.ReturnedToCache > 0 {
			s.publish(Event{Time: s.now(), Type: "gc", Bytes: rep.BytesFreed, Message: gcSummary(rep)})
		}
	}
	return rep, nil
}

func (s *Server) logGC(rep GCReport) {
	s.log.Info(gcSummary(rep),
		"dry_run", rep.DryRun, "freed_blobs", rep.BlobsFreed, "freed_bytes", rep.BytesFreed,
		"links_removed", rep.LinksRemoved, "returned_to_cache", rep.ReturnedToCache, "kept_in_use", rep.Kept,
		"manifests", rep.Manifests, "repositories", rep.Repositories, "grace", rep.Grace, "duration", rep.Duration.Round(time.Millisecond))
	for _, p := range rep.Problems {
		s.log.Warn("garbage collection deleted no blobs: "+p, "dry_run", rep.DryRun)
	}
}

// gcSummary is the readable line for logs and events.
func gcSummary(rep GCReport) string {
	verb, removed := "freed", "removed"
	if rep.DryRun {
		verb, removed = "would free", "would remove"
	}
	return fmt.Sprintf("garbage collection %s %d blobs (%s) and %s %d unreferenced links; %d hosted manifests checked in %s",
		verb, rep.BlobsFreed, mib(rep.BytesFreed), removed, rep.LinksRemoved, rep.Manifests, rep.Duration.Round(time.Millisecond))
}

func mib(n int64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

// scheduledGC runs one collection from housekeeping.
func (s *Server) scheduledGC(leading func() bool) {
	if !leading() {
		s.log.Debug("scheduled garbage collection left to the leader replica")
		return
	}
	if _, err := s.GC(context.Background(), GCRequest{}); errors.Is(err, hosted.ErrGCRunning) {
		s.log.Info("scheduled garbage collection skipped: one is already running")
	}
}
