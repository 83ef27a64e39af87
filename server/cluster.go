package server

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/wharf-registry/wharf/cache/index/pgindex"
	"github.com/wharf-registry/wharf/config"
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
		return fmt.Errorf("storage.s3: %w", err)
	}
	idx, err := pgindex.Open(octx, s.cfg.Index.Postgres, pgindex.Options{Logger: s.log, MaxConns: pgMaxConns})
	if err != nil {
		return fmt.Errorf("index.postgres: %w", err)
	}
	s.idx = idx
	s.leader = idx.NewLeader(pgindex.LeaderHousekeeping, leaderInterval)
	s.replicas, s.replicaID, s.locks = idx, newReplicaID(), idx
	staged, err := storage.NewStaged(filepath.Join(dir, "scratch"), remote)
	if err != nil {
		return fmt.Errorf("scratch area for fills and uploads: %w", err)
	}
	s.store = staged
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
// without storage.s3 and index.postgres it does nothing. Opening the
// index applies pending schema migrations, as a first start would.
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
		return nil, fmt.Errorf("storage.s3: %w", err)
	}
	where := sc.Endpoint
	if where == "" {
		where = "AWS S3"
	}
	lines := []string{fmt.Sprintf("storage.s3: bucket %s at %s answers to these credentials (keys under %q)", sc.Bucket, where, remote.Prefix())}
	idx, err := pgindex.Open(ctx, cfg.Index.Postgres, pgindex.Options{MaxConns: 2})
	if err != nil {
		return lines, fmt.Errorf("index.postgres: %w", err)
	}
	idx.Close()
	return append(lines, fmt.Sprintf("index.postgres: database reachable, schema at version %d", pgindex.SchemaVersion())), nil
}
