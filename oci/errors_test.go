package oci_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"testing"

	"github.com/wharf-registry/wharf/oci"
)

// TestCodeStatuses pins each code's name and status. The spec's error code
// table lists names only; statuses follow the spec's endpoint table and
// conformance suite, and Distribution where the spec is silent.
func TestCodeStatuses(t *testing.T) {
	tests := []struct {
		code   oci.Code
		name   string
		status int
	}{
		{oci.CodeBlobUnknown, "BLOB_UNKNOWN", 404},
		{oci.CodeBlobUploadInvalid, "BLOB_UPLOAD_INVALID", 400},
		{oci.CodeBlobUploadUnknown, "BLOB_UPLOAD_UNKNOWN", 404},
		{oci.CodeDigestInvalid, "DIGEST_INVALID", 400},
		{oci.CodeManifestBlobUnknown, "MANIFEST_BLOB_UNKNOWN", 404},
		{oci.CodeManifestInvalid, "MANIFEST_INVALID", 400},
		{oci.CodeManifestUnknown, "MANIFEST_UNKNOWN", 404},
		{oci.CodeNameInvalid, "NAME_INVALID", 400},
		{oci.CodeNameUnknown, "NAME_UNKNOWN", 404},
		{oci.CodeSizeInvalid, "SIZE_INVALID", 400},
		{oci.CodeUnauthorized, "UNAUTHORIZED", 401},
		{oci.CodeDenied, "DENIED", 403},
		{oci.CodeUnsupported, "UNSUPPORTED", 405},
		{oci.CodeTooManyRequests, "TOOMANYREQUESTS", 429},
		{oci.CodeRangeInvalid, "RANGE_INVALID", 416},
		{oci.CodeTagInvalid, "TAG_INVALID", 400},
		{oci.CodePaginationInvalid, "PAGINATION_NUMBER_INVALID", 400},
		{oci.CodeUnavailable, "UNAVAILABLE", 503},
		{oci.CodeInsufficientStorage, "UNAVAILABLE", 507},
		{oci.CodeUpstreamFailed, "UNAVAILABLE", 502},
		{oci.CodeUpstreamTimeout, "UNAVAILABLE", 504},
		{oci.CodeUnknown, "UNKNOWN", 500},
		{oci.CodeNotFound, "NOT_FOUND", 404},
		{oci.CodeParameterInvalid, "PARAMETER_INVALID", 400},
	}
	for _, tt := range tests {
		if tt.code.Name != tt.name || tt.code.Status != tt.status {
			t.Errorf("code %s = %d, want %s = %d", tt.code.Name, tt.code.Status, tt.name, tt.status)
		}
		if tt.code.Message == "" || http.StatusText(tt.code.Status) == "" {
			t.Errorf("code %s: message %q, status %d", tt.code.Name, tt.code.Message, tt.code.Status)
		}
		e := &oci.Error{Code: tt.code}
		if e.HTTPStatus() != tt.status || e.Error() != tt.name+": "+tt.code.Message {
			t.Errorf("bare %s error: status %d, text %q", tt.name, e.HTTPStatus(), e.Error())
		}
	}
}

func TestErrorIs(t *testing.T) {
	err := oci.Errorf(oci.CodeBlobUnknown, "blob %s not here", dgA)
	if err.Error() != "BLOB_UNKNOWN: blob "+dgA+" not here" {
		t.Errorf("Error() = %q", err.Error())
	}
	wrapped := fmt.Errorf("fetching: %w", err)
	if !errors.Is(wrapped, oci.ErrBlobUnknown) {
		t.Error("wrapped BLOB_UNKNOWN is not ErrBlobUnknown")
	}
	if !errors.Is(fmt.Errorf("x: %w", oci.ErrBlobUnknown), oci.ErrBlobUnknown) {
		t.Error("wrapped sentinel is not itself")
	}
	if errors.Is(wrapped, oci.ErrManifestUnknown) || errors.Is(wrapped, oci.ErrBlobUploadUnknown) {
		t.Error("BLOB_UNKNOWN matches another code")
	}
	if errors.Is(wrapped, fs.ErrNotExist) {
		t.Error("BLOB_UNKNOWN matches fs.ErrNotExist")
	}
	// A specific error is not a target: only message-less sentinels are.
	if errors.Is(oci.ErrBlobUnknown, err) {
		t.Error("sentinel matches a specific error")
	}
	if errors.Is(oci.Errorf(oci.CodeBlobUnknown, "x"), oci.Errorf(oci.CodeBlobUnknown, "x")) {
		t.Error("two distinct messages errors compare equal")
	}
	// Status overrides do not change identity.
	if !errors.Is(err.WithStatus(http.StatusGone), oci.ErrBlobUnknown) {
		t.Error("WithStatus copy lost its code identity")
	}
	// The three UNAVAILABLE flavours are different codes.
	if errors.Is(oci.Errorf(oci.CodeUpstreamFailed, "x"), &oci.Error{Code: oci.CodeUnavailable}) {
		t.Error("upstream failure matches plain UNAVAILABLE")
	}
	sentinels := map[*oci.Error]oci.Code{
		oci.ErrBlobUnknown: oci.CodeBlobUnknown, oci.ErrBlobUploadInvalid: oci.CodeBlobUploadInvalid,
		oci.ErrBlobUploadUnknown: oci.CodeBlobUploadUnknown, oci.ErrDigestInvalid: oci.CodeDigestInvalid,
		oci.ErrManifestBlobUnknown: oci.CodeManifestBlobUnknown, oci.ErrManifestInvalid: oci.CodeManifestInvalid,
		oci.ErrManifestUnknown: oci.CodeManifestUnknown, oci.ErrNameInvalid: oci.CodeNameInvalid,
		oci.ErrNameUnknown: oci.CodeNameUnknown, oci.ErrSizeInvalid: oci.CodeSizeInvalid,
		oci.ErrUnsupported: oci.CodeUnsupported, oci.ErrRangeInvalid: oci.CodeRangeInvalid,
	}
	for s, c := range sentinels {
		if s.Code != c || s.Message != "" || s.Detail != nil || s.Status != 0 {
			t.Errorf("sentinel %s is %+v", c.Name, s)
		}
		if !errors.Is(fmt.Errorf("w: %w", oci.Errorf(c, "m")), s) {
			t.Errorf("%s error is not its sentinel", c.Name)
		}
		for other, oc := range sentinels {
			if oc != c && errors.Is(s, other) {
				t.Errorf("%s matches %s", c.Name, oc.Name)
			}
		}
	}
}

func TestWithStatusAndDetailCopy(t *testing.T) {
	base := oci.Errorf(oci.CodeUnsupported, "deletes are disabled")
	st := base.WithStatus(http.StatusBadRequest)
	if st == base || base.Status != 0 || base.HTTPStatus() != 405 || st.HTTPStatus() != 400 {
		t.Errorf("WithStatus: base %d, copy %d (same pointer %v)", base.HTTPStatus(), st.HTTPStatus(), st == base)
	}
	dt := base.WithDetail(map[string]string{"digest": dgA})
	if dt == base || base.Detail != nil || dt.Detail == nil || dt.Message != base.Message {
		t.Errorf("WithDetail: base %+v, copy %+v", base, dt)
	}
	// Sentinels are shared; copies must never write through to them.
	s := oci.ErrBlobUnknown.WithStatus(410).WithDetail("x")
	if oci.ErrBlobUnknown.Status != 0 || oci.ErrBlobUnknown.Detail != nil {
		t.Errorf("sentinel modified: %+v", oci.ErrBlobUnknown)
	}
	// A sentinel with detail attached is no longer a target, but still matches one.
	if !errors.Is(s, oci.ErrBlobUnknown) || errors.Is(oci.ErrBlobUnknown, s) {
		t.Error("detail copy identity")
	}
}

func TestAsError(t *testing.T) {
	e := oci.Errorf(oci.CodeNameUnknown, "no such repo")
	got, ok := oci.AsError(fmt.Errorf("a: %w", fmt.Errorf("b: %w", e)))
	if !ok || got != e {
		t.Errorf("AsError = %v, %v", got, ok)
	}
	if got, ok := oci.AsError(errors.New("plain")); ok || got != nil {
		t.Errorf("AsError(plain) = %v, %v", got, ok)
	}
	if _, ok := oci.AsError(nil); ok {
		t.Error("AsError(nil) ok")
	}
}

type envelope struct {
	Errors []struct {
		Code    string          `json:"code"`
		Message string          `json:"message"`
		Detail  json.RawMessage `json:"detail"`
	} `json:"errors"`
}

func TestEnvelope(t *testing.T) {
	tests := []struct {
		name string
		errs []*oci.Error
		want string
	}{
		{"none", nil, `{"errors":[]}`},
		{"default message", []*oci.Error{oci.ErrBlobUnknown}, `{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}`},
		{"own message", []*oci.Error{oci.Errorf(oci.CodeNameInvalid, "bad %q", "A")},
			`{"errors":[{"code":"NAME_INVALID","message":"bad \"A\""}]}`},
		{"detail", []*oci.Error{oci.ErrDigestInvalid.WithDetail(map[string]string{"digest": "x"})},
			`{"errors":[{"code":"DIGEST_INVALID","message":"provided digest did not match uploaded content","detail":{"digest":"x"}}]}`},
		{"several", []*oci.Error{oci.ErrManifestBlobUnknown.WithDetail(dgA), oci.ErrManifestBlobUnknown.WithDetail(dgB)},
			`{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"manifest references a manifest or blob unknown to registry","detail":"` + dgA + `"},` +
				`{"code":"MANIFEST_BLOB_UNKNOWN","message":"manifest references a manifest or blob unknown to registry","detail":"` + dgB + `"}]}`},
		{"unmarshalable detail dropped", []*oci.Error{oci.Errorf(oci.CodeUnknown, "boom").WithDetail(func() {})},
			`{"errors":[{"code":"UNKNOWN","message":"boom"}]}`},
		{"html escaped", []*oci.Error{oci.Errorf(oci.CodeNameInvalid, "<script>")},
			`{"errors":[{"code":"NAME_INVALID","message":"\u003cscript\u003e"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := oci.Envelope(tt.errs...)
			if string(b) != tt.want {
				t.Errorf("Envelope = %s\nwant       %s", b, tt.want)
			}
			var env envelope
			if err := json.Unmarshal(b, &env); err != nil || len(env.Errors) != len(tt.errs) {
				t.Fatalf("envelope does not decode: %v (%d entries)", err, len(env.Errors))
			}
			for i, e := range env.Errors {
				if e.Code == "" || e.Message == "" || e.Code != tt.errs[i].Code.Name {
					t.Errorf("entry %d = %+v", i, e)
				}
			}
		})
	}
}

func TestParseEnvelope(t *testing.T) {
	body := oci.Envelope(oci.Errorf(oci.CodeBlobUnknown, "blob %s not here", dgA), &oci.Error{Code: oci.CodeDenied})
	if code, msg, ok := oci.ParseEnvelope(body); !ok || code != "BLOB_UNKNOWN" || msg != "blob "+dgA+" not here" {
		t.Errorf("ParseEnvelope(%s) = %q %q %v", body, code, msg, ok)
	}
	for _, b := range []string{``, `not json`, `{}`, `{"errors":[]}`, `{"error":"old style"}`, `[1]`} {
		if code, msg, ok := oci.ParseEnvelope([]byte(b)); ok {
			t.Errorf("ParseEnvelope(%q) = %q %q, want not ok", b, code, msg)
		}
	}
}
