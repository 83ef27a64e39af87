package server

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// listenACMEHTTP serves ACME HTTP-01 challenges and redirects plain-HTTP
// clients to https on tls.http_listen (mode acme only).
func (s *Server) listenACMEHTTP() error {
	h := s.certs.HTTPHandler(s.addr)
	if h == nil {
		return nil
	}
	ln, err := net.Listen("tcp", s.cfg.TLS.HTTPListen)
	if err != nil {
		return fmt.Errorf("tls.http_listen %s (ACME HTTP-01 and redirects to https): %w; free the port, or set tls.http_listen: off to use TLS-ALPN-01 only", s.cfg.TLS.HTTPListen, err)
	}
	s.acmeHTTP = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func(srv *http.Server) {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("ACME HTTP listener stopped", "err", err)
		}
	}(s.acmeHTTP)
	s.log.Info("answering ACME HTTP-01 challenges and redirecting to https", "addr", ln.Addr().String())
	return nil
}

func (s *Server) scheme() string {
	if s.certs != nil {
		return "https"
	}
	return "http"
}
