package registry

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wharf-registry/wharf/auth"
	"github.com/wharf-registry/wharf/oci"
)

// TokenService is the service name in challenges and tokens.
const TokenService = "wharf"

// TokenPath is where the token service answers.
const TokenPath = "/auth/token"

// action is what a request needs permission for.
func action(rt Route, method string) auth.Action {
	switch {
	case method == http.MethodDelete && (rt.Kind == KindManifest || rt.Kind == KindBlob):
		return auth.Delete
	case rt.Kind == KindUploadStart || rt.Kind == KindUpload || method == http.MethodPut:
		return auth.Push
	}
	return auth.Pull
}

// scopeActions are the actions a client should ask a token for: Docker
// asks "pull,push" for a push and so does wharf's challenge.
func scopeActions(a auth.Action) string {
	switch a {
	case auth.Push:
		return "pull,push"
	case auth.Delete:
		return "delete"
	}
	return "pull"
}

// ruleName is the repository name rules match: the namespace first, as a
// client addressing that namespace by prefix would write it.
func (h *Handler) ruleName(tg target, name string) (string, auth.Namespace) {
	if tg.proxy != nil {
		return tg.proxy.Name + "/" + tg.repo, auth.Namespace{Name: tg.proxy.Name, Proxy: true, AnonymousPull: tg.proxy.AnonymousPull}
	}
	ns := auth.Namespace{Name: name}
	for _, n := range h.o.HostedNamespaces {
		if name == n || strings.HasPrefix(name, n+"/") {
			ns = auth.Namespace{Name: n, AnonymousPull: h.o.HostedAnonymousPull[n]}
		}
	}
	return name, ns
}

// authenticate finds who sent r; a failure is the error to answer.
func (h *Handler) authenticate(w http.ResponseWriter, r *http.Request, scope string) (auth.Identity, error) {
	id, err := h.o.Auth.Identify(r)
	if err != nil {
		return id, h.authError(w, r, err, scope)
	}
	return id, nil
}

// authError turns an authentication failure into the OCI error, with the
// headers its status calls for.
func (h *Handler) authError(w http.ResponseWriter, r *http.Request, err error, scope string) error {
	var lim *auth.LimitedError
	switch {
	case errors.As(err, &lim):
		w.Header().Set("Retry-After", strconv.Itoa(int(lim.RetryAfter.Round(time.Second)/time.Second)+1))
		return oci.Errorf(oci.CodeTooManyRequests, "%s", lim.Error())
	case errors.Is(err, auth.ErrUnavailable):
		return oci.Errorf(oci.CodeUnavailable, "the user directory (LDAP) cannot be reached, so this login cannot be checked now; users from the htpasswd file can still log in")
	case errors.Is(err, auth.ErrInvalidToken):
		h.challenge(w, r, scope, "invalid_token")
		return oci.Errorf(oci.CodeUnauthorized, "the bearer token is invalid or expired; log in again")
	default:
		h.challenge(w, r, scope, "")
		return oci.Errorf(oci.CodeUnauthorized, "incorrect user name or password")
	}
}

// challenge sets the WWW-Authenticate header that sends Docker, containerd,
// skopeo and podman to the token service.
func (h *Handler) challenge(w http.ResponseWriter, r *http.Request, scope, errCode string) {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	v := fmt.Sprintf(`Bearer realm="%s://%s%s",service="%s"`, scheme, r.Host, TokenPath, TokenService)
	if scope != "" {
		v += fmt.Sprintf(`,scope="%s"`, scope)
	}
	if errCode != "" {
		v += fmt.Sprintf(`,error="%s"`, errCode)
	}
	w.Header().Set("WWW-Authenticate", v)
}

// authorize checks a request on a repository; nil means go ahead.
func (h *Handler) authorize(w http.ResponseWriter, r *http.Request, rt Route, tg target) error {
	pol := h.o.Auth.Policy()
	if !pol.Enabled() {
		return nil
	}
	act := action(rt, r.Method)
	scope := "repository:" + rt.Name + ":" + scopeActions(act)
	id, err := h.authenticate(w, r, scope)
	if err != nil {
		return err
	}
	name, ns := h.ruleName(tg, rt.Name)
	if !pol.Allowed(id, name, ns, act) {
		return h.deny(w, r, id, scope, name, act)
	}
	if rt.Kind == KindUploadStart {
		h.authorizeMount(r, id)
	}
	return nil
}

func (h *Handler) deny(w http.ResponseWriter, r *http.Request, id auth.Identity, scope, name string, act auth.Action) error {
	if id.Anonymous() {
		h.challenge(w, r, scope, "")
		return oci.Errorf(oci.CodeUnauthorized, "authentication required to %s %s; log in with `docker login %s`", act, name, r.Host)
	}
	h.log.Info("access denied", "user", id.User, "action", string(act), "repository", name, "remote", r.RemoteAddr)
	return oci.Errorf(oci.CodeDenied, "user %s may not %s %s", id.User, act, name)
}

// authorizeMount drops a cross-repository mount the user may not read
// from: the upload then goes ahead as a normal one, as the spec allows,
// and no content leaks from a repository the user cannot pull.
func (h *Handler) authorizeMount(r *http.Request, id auth.Identity) {
	q := r.URL.Query()
	from := q.Get("from")
	if q.Get("mount") == "" || from == "" {
		return
	}
	if oci.ValidateName(from) == nil {
		if tg, err := h.resolve(&http.Request{URL: emptyURL()}, from); err == nil && tg.proxy == nil {
			name, ns := h.ruleName(tg, from)
			if h.o.Auth.Policy().Allowed(id, name, ns, auth.Pull) {
				return
			}
		}
	}
	q.Del("mount")
	q.Del("from")
	r.URL.RawQuery = q.Encode()
}

// authorizeBase answers /v2/: with auth on, anonymous clients get the
// challenge that starts `docker login` and token fetching.
func (h *Handler) authorizeBase(w http.ResponseWriter, r *http.Request) error {
	if !h.o.Auth.Policy().Enabled() {
		return nil
	}
	id, err := h.authenticate(w, r, "")
	if err != nil {
		return err
	}
	if id.Anonymous() {
		h.challenge(w, r, "", "")
		return oci.Errorf(oci.CodeUnauthorized, "authentication required; log in with `docker login %s` (pulls through proxy namespaces work without it)", r.Host)
	}
	return nil
}

// authorizeCatalog: the catalog needs a login; it lists only repositories
// the user may pull (canPull filters).
func (h *Handler) authorizeCatalog(w http.ResponseWriter, r *http.Request) (canPull func(string) bool, err error) {
	pol := h.o.Auth.Policy()
	if !pol.Enabled() {
		return func(string) bool { return true }, nil
	}
	const scope = "registry:catalog:*"
	id, err := h.authenticate(w, r, scope)
	if err != nil {
		return nil, err
	}
	if id.Anonymous() {
		h.challenge(w, r, scope, "")
		return nil, oci.Errorf(oci.CodeUnauthorized, "authentication required to list repositories")
	}
	return func(name string) bool {
		tg := target{repo: name}
		rn, ns := h.ruleName(tg, name)
		return pol.Allowed(id, rn, ns, auth.Pull)
	}, nil
}
