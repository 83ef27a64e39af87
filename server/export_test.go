package server

// WithoutLifecycle starts a server whose proxies record no access times
// and mark no blob in use, the baseline against which the warm-pull cost
// of that bookkeeping is measured.
func WithoutLifecycle() Option { return func(s *Server) { s.noLifecycle = true } }
