package harness

import (
	"errors"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// HasStatus reports whether err is a registry's error answer, as
// go-containerregistry returns it, with that HTTP status. It looks at the
// answer itself, never at the error's text, which also holds the URL and
// so the port: "403" is in "http://127.0.0.1:41403/…".
func HasStatus(err error, status int) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == status
}

// HasCode reports whether err is a registry's error answer carrying that
// OCI error code (UNAUTHORIZED, DENIED, BLOB_UNKNOWN, …).
func HasCode(err error, code transport.ErrorCode) bool {
	var te *transport.Error
	if !errors.As(err, &te) {
		return false
	}
	for _, d := range te.Errors {
		if d.Code == code {
			return true
		}
	}
	return false
}

// Unauthorized reports whether err is a 401 or an UNAUTHORIZED answer.
func Unauthorized(err error) bool {
	return HasStatus(err, 401) || HasCode(err, transport.UnauthorizedErrorCode)
}

// Denied reports whether err is a 403 or a DENIED answer.
func Denied(err error) bool {
	return HasStatus(err, 403) || HasCode(err, transport.DeniedErrorCode)
}
