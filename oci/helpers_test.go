package oci_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/wharf-registry/wharf/oci"
)

var (
	hex64  = strings.Repeat("0123456789abcdef", 4)
	hex128 = strings.Repeat("0123456789abcdef", 8)
	dgA    = "sha256:" + strings.Repeat("a", 64)
	dgB    = "sha256:" + strings.Repeat("b", 64)
	dgC    = "sha256:" + strings.Repeat("c", 64)
)

// checkCode fails unless err is an *oci.Error of code answered with status
// (status 0: the code's own status).
func checkCode(t *testing.T, what string, err error, code oci.Code, status int) {
	t.Helper()
	var e *oci.Error
	if !errors.As(err, &e) {
		t.Errorf("%s: error = %v (%T), want *oci.Error %s", what, err, err, code.Name)
		return
	}
	if status == 0 {
		status = code.Status
	}
	if e.Code != code || e.HTTPStatus() != status {
		t.Errorf("%s: error = %s/%d (%v), want %s/%d", what, e.Code.Name, e.HTTPStatus(), err, code.Name, status)
	}
}

// check4xx is the fuzz property shared by every parser: errors are always
// *oci.Error answered with a client-error status.
func check4xx(t *testing.T, what string, err error) {
	t.Helper()
	e, ok := err.(*oci.Error)
	if !ok {
		t.Fatalf("%s: error %v is %T, want *oci.Error", what, err, err)
	}
	if s := e.HTTPStatus(); s < 400 || s > 499 {
		t.Fatalf("%s: error %v has status %d, want 4xx", what, err, s)
	}
	if e.Error() == "" {
		t.Fatalf("%s: empty error message", what)
	}
}
