// Package oci holds the vocabulary of the OCI Distribution Spec: names, tags,
// digests, media types, descriptors, and the error codes with their HTTP
// statuses and JSON envelope. It imports nothing else from wharf.
package oci

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Code is an error code of the distribution spec together with the HTTP
// status it is answered with. Keeping both in one value means a handler can
// never pair a code with the wrong status.
type Code struct {
	Name   string
	Status int
	// Message is the spec's default text, used when an error has none.
	Message string
}

// The codes of the OCI Distribution Spec v1.1, plus TOOMANYREQUESTS and the
// few that Docker clients know from Distribution.
var (
	CodeBlobUnknown         = Code{"BLOB_UNKNOWN", http.StatusNotFound, "blob unknown to registry"}
	CodeBlobUploadInvalid   = Code{"BLOB_UPLOAD_INVALID", http.StatusBadRequest, "blob upload invalid"}
	CodeBlobUploadUnknown   = Code{"BLOB_UPLOAD_UNKNOWN", http.StatusNotFound, "blob upload unknown to registry"}
	CodeDigestInvalid       = Code{"DIGEST_INVALID", http.StatusBadRequest, "provided digest did not match uploaded content"}
	CodeManifestBlobUnknown = Code{"MANIFEST_BLOB_UNKNOWN", http.StatusNotFound, "manifest references a manifest or blob unknown to registry"}
	CodeManifestInvalid     = Code{"MANIFEST_INVALID", http.StatusBadRequest, "manifest invalid"}
	CodeManifestUnknown     = Code{"MANIFEST_UNKNOWN", http.StatusNotFound, "manifest unknown to registry"}
	CodeNameInvalid         = Code{"NAME_INVALID", http.StatusBadRequest, "invalid repository name"}
	CodeNameUnknown         = Code{"NAME_UNKNOWN", http.StatusNotFound, "repository name not known to registry"}
	CodeSizeInvalid         = Code{"SIZE_INVALID", http.StatusBadRequest, "provided length did not match content length"}
	CodeUnauthorized        = Code{"UNAUTHORIZED", http.StatusUnauthorized, "authentication required"}
	CodeDenied              = Code{"DENIED", http.StatusForbidden, "requested access to the resource is denied"}
	CodeUnsupported         = Code{"UNSUPPORTED", http.StatusMethodNotAllowed, "the operation is unsupported"}
	CodeTooManyRequests     = Code{"TOOMANYREQUESTS", http.StatusTooManyRequests, "too many requests"}
	CodeRangeInvalid        = Code{"RANGE_INVALID", http.StatusRequestedRangeNotSatisfiable, "invalid content range"}
	CodeTagInvalid          = Code{"TAG_INVALID", http.StatusBadRequest, "manifest tag did not match URI"}
	CodePaginationInvalid   = Code{"PAGINATION_NUMBER_INVALID", http.StatusBadRequest, "invalid number of results requested"}
	CodeUnavailable         = Code{"UNAVAILABLE", http.StatusServiceUnavailable, "service unavailable"}
	CodeInsufficientStorage = Code{"UNAVAILABLE", http.StatusInsufficientStorage, "insufficient storage"}
	CodeUpstreamFailed      = Code{"UNAVAILABLE", http.StatusBadGateway, "upstream registry failed"}
	CodeUpstreamTimeout     = Code{"UNAVAILABLE", http.StatusGatewayTimeout, "upstream registry timed out"}
	CodeUnknown             = Code{"UNKNOWN", http.StatusInternalServerError, "unknown error"}
)

// Codes the spec does not define, for what lies outside its endpoints:
// paths that name no endpoint (other registries answer NOT_FOUND too) and
// the parameters of wharf's own admin API. Clients show an unknown code's
// message, so these read like the spec's.
var (
	CodeNotFound         = Code{"NOT_FOUND", http.StatusNotFound, "no such endpoint"}
	CodeParameterInvalid = Code{"PARAMETER_INVALID", http.StatusBadRequest, "invalid request parameter"}
)

// Error is an OCI error: a code, a human message, and optional detail.
// Domain packages return these (usually wrapped with fmt.Errorf("%w")) and
// the HTTP layer writes them with one function.
type Error struct {
	Code    Code
	Message string
	Detail  any
	// Status overrides Code.Status when non-zero (e.g. 405 vs 400 for
	// UNSUPPORTED depending on what was attempted).
	Status int
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = e.Code.Message
	}
	return e.Code.Name + ": " + msg
}

// HTTPStatus is the status this error is answered with.
func (e *Error) HTTPStatus() int {
	if e.Status != 0 {
		return e.Status
	}
	return e.Code.Status
}

// Is lets errors.Is(err, oci.ErrBlobUnknown) match any error of that code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Message == "" && t.Detail == nil
}

// Errorf makes an *Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// WithStatus returns a copy of e answered with status instead of the code's.
func (e *Error) WithStatus(status int) *Error {
	c := *e
	c.Status = status
	return &c
}

// WithDetail returns a copy of e carrying detail.
func (e *Error) WithDetail(d any) *Error {
	c := *e
	c.Detail = d
	return &c
}

// Sentinels for errors.Is; they carry no message of their own.
var (
	ErrBlobUnknown         = &Error{Code: CodeBlobUnknown}
	ErrBlobUploadInvalid   = &Error{Code: CodeBlobUploadInvalid}
	ErrBlobUploadUnknown   = &Error{Code: CodeBlobUploadUnknown}
	ErrDigestInvalid       = &Error{Code: CodeDigestInvalid}
	ErrManifestBlobUnknown = &Error{Code: CodeManifestBlobUnknown}
	ErrManifestInvalid     = &Error{Code: CodeManifestInvalid}
	ErrManifestUnknown     = &Error{Code: CodeManifestUnknown}
	ErrNameInvalid         = &Error{Code: CodeNameInvalid}
	ErrNameUnknown         = &Error{Code: CodeNameUnknown}
	ErrSizeInvalid         = &Error{Code: CodeSizeInvalid}
	ErrUnsupported         = &Error{Code: CodeUnsupported}
	ErrRangeInvalid        = &Error{Code: CodeRangeInvalid}
)

// AsError finds the *Error in err's chain.
func AsError(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}

type envelopeEntry struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

// ParseEnvelope reads the first error of an {"errors":[...]} body, as
// registries answer: its code and message. ok is false when body is not
// such an envelope or lists no error.
func ParseEnvelope(body []byte) (code, message string, ok bool) {
	var env struct {
		Errors []envelopeEntry `json:"errors"`
	}
	if json.Unmarshal(body, &env) != nil || len(env.Errors) == 0 {
		return "", "", false
	}
	return env.Errors[0].Code, env.Errors[0].Message, true
}

// Envelope renders errors as the spec's {"errors":[...]} body.
func Envelope(errs ...*Error) []byte {
	out := struct {
		Errors []envelopeEntry `json:"errors"`
	}{Errors: make([]envelopeEntry, 0, len(errs))}
	for _, e := range errs {
		msg := e.Message
		if msg == "" {
			msg = e.Code.Message
		}
		out.Errors = append(out.Errors, envelopeEntry{Code: e.Code.Name, Message: msg, Detail: e.Detail})
	}
	b, err := json.Marshal(out)
	if err != nil {
		// Detail was not marshalable; drop it rather than fail the response.
		for i := range out.Errors {
			out.Errors[i].Detail = nil
		}
		b, _ = json.Marshal(out)
	}
	return b
}
