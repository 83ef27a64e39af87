package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/wharf-registry/wharf/cache/index/pgindex"
	"github.com/wharf-registry/wharf/internal/atomicfile"
	"github.com/wharf-registry/wharf/oci"
)

// In cluster mode each replica upserts a heartbeat row every few seconds,
// and the status report lists the replicas seen lately.

const (
	heartbeatInterval = 5 * time.Second
	// replicaAlive is how recent a heartbeat must be for status to list
	// the replica: six missed beats.
	replicaAlive = 30 * time.Second
)

// replicaRegistry is where replicas say they are alive: pgindex.
type replicaRegistry interface {
	Heartbeat(ctx context.Context, r pgindex.Replica) error
	Leave(ctx context.Context, id string) error
	Replicas(ctx context.Context, within time.Duration) ([]pgindex.Replica, error)
	ReplicaAddr(ctx context.Context, id string, within time.Duration) (string, bool, error)
}

var _ replicaRegistry = (*pgindex.Index)(nil)

// ReplicaReport is one replica seen in the last 30 s; Self marks the one
// answering.
type ReplicaReport struct {
	pgindex.Replica
	Self bool `json:"self,omitempty"`
}

// replicaID names this replica among the others: the host name (a pod's
// name on Kubernetes) and a random suffix kept in the data dir, so that
// a replica restarted on the same scratch area is the same replica: the
// upload sessions it holds there stay its own, and its heartbeat row is
// taken up again. A data dir copied to another host gets a new name
// there with the host's.
func replicaID(dataDir string) (string, error) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "wharf"
	}
	p := filepath.Join(dataDir, "replica-id")
	b, err := os.ReadFile(p)
	suffix := strings.TrimSpace(string(b))
	if err != nil || len(suffix) != 8 {
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("reading this replica's id: %w", err)
		}
		var r [4]byte
		rand.Read(r[:])
		suffix = hex.EncodeToString(r[:])
		if err := atomicfile.Write(p, []byte(suffix+"\n"), 0o644); err != nil {
			return "", fmt.Errorf("saving this replica's id: %w", err)
		}
	}
	return host + "-" + suffix, nil
}

// replicaAddr finds a replica alive (seen in the last replicaAlive) and
// the base URL it advertises: where an upload session it holds is
// forwarded (cluster.ReplicaAddr).
func (s *Server) replicaAddr(ctx context.Context, id string) (string, bool, error) {
	if s.replicas == nil {
		return "", false, nil
	}
	addr, ok, err := s.replicas.ReplicaAddr(ctx, id, replicaAlive)
	if err != nil {
		return "", false, oci.Errorf(oci.CodeUnavailable, "cannot look up the replica holding this upload session: %v", err)
	}
	return addr, ok, nil
}

// beat upserts this replica's row once.
func (s *Server) beat(reg replicaRegistry, me pgindex.Replica) {
	ctx, cancel := context.WithTimeout(context.Background(), heartbeatInterval)
	defer cancel()
	if err := reg.Heartbeat(ctx, me); err != nil {
		s.log.Warn("replica heartbeat failed; wharf status on other replicas may not list this one", "err", err)
		return
	}
	if rs, err := reg.Replicas(ctx, replicaAlive); err == nil {
		s.metrics.Cluster().Replicas(len(rs))
	}
}

// heartbeats beats every heartbeatInterval until stop, then removes the
// row so that status stops listing this replica at once.
func (s *Server) heartbeats(reg replicaRegistry, me pgindex.Replica, stop <-chan struct{}) {
	defer s.bg.Done()
	t := time.NewTicker(heartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := reg.Leave(ctx, me.ID); err != nil {
				s.log.Warn("removing this replica's heartbeat row failed; it drops out of wharf status in 30s", "err", err)
			}
			return
		case <-t.C:
			s.beat(reg, me)
		}
	}
}

// replicaReports lists the replicas seen lately (nil in single-box mode).
func (s *Server) replicaReports() []ReplicaReport {
	s.mu.Lock()
	reg, id := s.replicas, s.replicaID
	s.mu.Unlock()
	if reg == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rs, err := reg.Replicas(ctx, replicaAlive)
	if err != nil {
		s.log.Warn("listing replicas for the status report", "err", err)
		return nil
	}
	out := make([]ReplicaReport, 0, len(rs))
	for _, r := range rs {
		out = append(out, ReplicaReport{Replica: r, Self: r.ID == id})
	}
	return out
}
