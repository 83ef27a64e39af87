package server

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"time"

	"github.com/wharf-registry/wharf/cache"
	"github.com/wharf-registry/wharf/cache/index/pgindex"
	"github.com/wharf-registry/wharf/cluster"
	"github.com/wharf-registry/wharf/config"
	"github.com/wharf-registry/wharf/oci"
	"github.com/wharf-registry/wharf/storage"
	"github.com/wharf-registry/wharf/storage/s3"
)

// Cluster mode (issue #13): blobs in an S3-compatible bucket, metadata in
// PostgreSQL, shared by every replica; each replica's data_dir is only its
// own scratch area, where fills and uploads stream before they are handed
// over to the bucket.

// engineTimeout bounds reaching the bucket and the database at start and
// in `wharf config check`: an unreachable engine is an error, not a hang.
const engineTimeout = 30 * time.Second

// pgMaxConns is each replica's pool: several replicas stay well within
// PostgreSQL's default max_connections (100).
const pgMaxConns = 16

// redirectTTL is how long a presigned blob URL (storage.s3.redirect) stays
// valid: long enough for a slow client to start, short enough that a
// leaked URL soon stops working.
const redirectTTL = 15 * time.Minute

func s3Config(c *config.S3) (s3.Config, error) {
	secret, err := c.ResolveSecretKey()
	if err != nil {
		return s3.Config{}, err
	}
	return s3.Config{Endpoint: c.Endpoint, Region: c.Region, Bucket: c.Bucket, Prefix: c.Prefix, AccessKey: c.AccessKey, SecretKey: secret}, nil
}

// openCluster opens the bucket (through a Staged store whose scratch area
// is dir/scratch) and the PostgreSQL index. Errors name the config key to
// fix. Nothing is reconciled at start: the bucket and the tables are
// shared with running replicas, and `wharf fsck` checks them.
func (s *Server) openCluster(ctx context.Context, dir string) error {
	sc, err := s3Config(s.cfg.Storage.S3)
	if err != nil {
		return err
	}
	octx, cancel := context.WithTimeout(ctx, engineTimeout)
	defer cancel()
	remote, err := s3.New(octx, sc)
	if err != nil {
		return err // its message names the storage.s3 key to fix
	}
	idx, err := pgindex.Open(octx, s.cfg.Index.Postgres, pgindex.Options{Logger: s.log, MaxConns: pgMaxConns})
	if err != nil {
		return fmt.Errorf("index.postgres: %w", err)
	}
	s.idx = idx
	s.leader = idx.NewLeader(pgindex.LeaderHousekeeping, leaderInterval)
	id, err := replicaID(dir)
	if err != nil {
		return err
	}
	s.replicas, s.replicaID, s.locks = idx, id, idx
	staged, err := storage.NewStaged(filepath.Join(dir, "scratch"), remote)
	if err != nil {
		return fmt.Errorf("scratch area for fills and uploads: %w", err)
	}
	s.store = staged
	if s.cfg.Storage.S3.Redirect {
		s.blobRedirect = func(ctx context.Context, d oci.Digest) (string, error) {
			u, err := remote.Presign(ctx, d, redirectTTL)
			if err != nil {
				return "", err
			}
			return u.String(), nil
		}
	}
	tok, err := idx.ClusterToken(octx)
	if err != nil {
		return fmt.Errorf("index.postgres: %w", err)
	}
	s.coord = cluster.New(cluster.Options{Leases: idx, Index: idx, Store: staged, Token: tok, Logger: s.log, Metrics: s.metrics.Cluster()})
	s.tokenKey = cluster.TokenSigningKey(tok)
	// A write of a digest on one replica and its deletion by GC or
	// eviction on another never interleave.
	remote.SetSharedClaims(cluster.NewBlobClaims(idx, s.log))
	// The scratch area's leftovers are this replica's own; the bucket's
	// unfinished uploads are swept only past a grace period, since other
	// replicas may be uploading right now.
	if n, err := staged.CleanTemp(); err != nil {
		return err
	} else if n > 0 {
		s.log.Warn("removed what unfinished writes left (scratch temp files, stale multipart uploads)", "count", n)
	}
	where := sc.Endpoint
	if where == "" {
		where = "AWS S3"
	}
	s.log.Info("cluster mode: blobs in S3, metadata in PostgreSQL", "endpoint", where, "bucket", sc.Bucket, "prefix", remote.Prefix(),
		"scratch", filepath.Join(dir, "scratch"), "schema_version", pgindex.SchemaVersion())
	return nil
}

// CheckEngines reaches cluster mode's bucket and database with cfg's
// credentials, as `wharf serve` does at start, and says what it found;
// without storage.s3 and index.postgres it does nothing. It changes
// nothing: pending schema migrations are reported, left for a replica's
// start.
func CheckEngines(ctx context.Context, cfg *config.Config) ([]string, error) {
	if !cfg.Clustered() {
		return nil, nil
	}
	sc, err := s3Config(cfg.Storage.S3)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, engineTimeout)
	defer cancel()
	remote, err := s3.New(ctx, sc)
	if err != nil {
		return nil, err // its message names the storage.s3 key to fix
	}
	where := sc.Endpoint
	if where == "" {
		where = "AWS S3"
	}
	lines := []string{fmt.Sprintf("storage.s3: bucket %s at %s answers to these credentials (keys under %q)", sc.Bucket, where, remote.Prefix())}
	idx, err := pgindex.Open(ctx, cfg.Index.Postgres, pgindex.Options{MaxConns: 2, NoMigrate: true})
	if err != nil {
		return lines, fmt.Errorf("index.postgres: %w", err)
	}
	defer idx.Close()
	at := idx.SchemaAt()
	switch {
	case at == pgindex.SchemaVersion():
		return append(lines, fmt.Sprintf("index.postgres: database reachable, schema at version %d", at)), nil
	case at == 0:
		return append(lines, fmt.Sprintf("index.postgres: database reachable, no wharf tables yet: the first replica to start creates them (schema version %d)", pgindex.SchemaVersion())), nil
	}
	return append(lines, fmt.Sprintf("index.postgres: database reachable, schema at version %d: the first replica of this wharf to start migrates it to version %d", at, pgindex.SchemaVersion())), nil
}

// coordinator is the proxies' cache.Coordinator: nil (an interface
// holding nothing) outside cluster mode.
func (s *Server) coordinator() cache.Coordinator {
	if s.coord == nil {
		return nil
	}
	return s.coord
}

// cacheProxies are the caches whose fills other replicas may stream.
func (s *Server) cacheProxies() []*cache.Proxy {
	out := make([]*cache.Proxy, 0, len(s.proxies))
	for _, p := range s.proxies {
		out = append(out, p.Proxy)
	}
	return out
}

// advertise is the base URL other replicas reach this one at:
// cluster.advertise, else the address listen bound, with the first
// non-loopback address of the machine when its host is unspecified.
func (s *Server) advertise(bound net.Addr) string {
	if a := s.cfg.Cluster.Advertise; a != "" {
		return a
	}
	host, port := "127.0.0.1", "5000"
	if ta, ok := bound.(*net.TCPAddr); ok {
		port = fmt.Sprint(ta.Port)
		if !ta.IP.IsUnspecified() {
			host = ta.IP.String()
		} else if ip := firstNonLoopback(); ip != nil {
			host = ip.String()
			s.log.Info("cluster: other replicas reach this one at the first non-loopback address; set cluster.advertise to choose another",
				"addr", host)
		} else {
			s.log.Warn("cluster: no non-loopback address: other replicas cannot reach this one; set cluster.advertise")
		}
	}
	return (&url.URL{Scheme: s.scheme(), Host: net.JoinHostPort(host, port)}).String()
}

// firstNonLoopback is the machine's first up, non-loopback unicast address
// (IPv4 first).
func firstNonLoopback() net.IP {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil
	}
	var v6 net.IP
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok || ipn.IP.IsLoopback() || ipn.IP.IsLinkLocalUnicast() {
				continue
			}
			if ip4 := ipn.IP.To4(); ip4 != nil {
				return ip4
			}
			if v6 == nil {
				v6 = ipn.IP
			}
		}
	}
	return v6
}
