package server

import (
	"context"
	"errors"
)

// openCluster opens cluster mode's shared engines.
func (s *Server) openCluster(ctx context.Context, dir string) error {
	return errors.New("storage.s3 and index.postgres (cluster mode) are accepted by the config but not served by this build yet; remove them to run on data_dir")
}
