//go:build linux

package harness

import (
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// The directory's fixed names. Tests build DNs from these.
const (
	SlapdSuffix       = "dc=example,dc=org"
	SlapdPeopleDN     = "ou=people," + SlapdSuffix
	SlapdGroupsDN     = "ou=groups," + SlapdSuffix
	SlapdRootDN       = "cn=admin," + SlapdSuffix
	SlapdRootPassword = "admin-secret"
	// The service account wharf searches as. It can read everything but
	// passwords.
	SlapdReaderDN       = "cn=reader," + SlapdSuffix
	SlapdReaderPassword = "reader-secret"
)

// SlapdUser is a person under ou=people with uid=UID, and a member of each
// group (a groupOfNames cn=NAME under ou=groups).
type SlapdUser struct {
	UID      string
	Password string
	Groups   []string
}

// DefaultSlapdUsers is the seed when SlapdOptions.Users is nil.
var DefaultSlapdUsers = []SlapdUser{
	{UID: "alice", Password: "alice-secret", Groups: []string{"devs", "ops"}},
	{UID: "bob", Password: "bob-secret", Groups: []string{"devs"}},
	{UID: "carol", Password: "carol-secret"},
}

// SlapdOptions configures StartSlapd.
type SlapdOptions struct {
	// Users to seed; nil means DefaultSlapdUsers.
	Users []SlapdUser
	// TLS makes a CA and a server certificate for 127.0.0.1, offers
	// StartTLS on URL and listens on LDAPSURL too.
	TLS bool
}

// Slapd is a running OpenLDAP server (Debian's slapd 2.5, back_mdb) on
// 127.0.0.1, seeded with an organisation, a service account, users and
// groups. The memberof overlay keeps memberOf on each user.
//
// Groups are added over LDAP after slapd starts, not by slapadd: slapadd
// writes the database directly and bypasses overlays, so groupOfNames
// entries it loads leave their members without memberOf. (slapadd would
// accept memberOf values written into the LDIF by hand, but then the test
// would not be checking what the overlay maintains.)
type Slapd struct {
	// Proc is the current slapd; Stop and Start replace it.
	Proc *Process

	URL      string // ldap://127.0.0.1:PORT/
	LDAPSURL string // ldaps://127.0.0.1:PORT/ with TLS, else ""
	// CAFile is the PEM of the CA that signed the server certificate,
	// with TLS.
	CAFile string

	BaseDN       string // where users are: ou=people,dc=example,dc=org
	GroupBaseDN  string // where groups are: ou=groups,dc=example,dc=org
	BindDN       string // the service account
	BindPassword string
	Users        []SlapdUser

	dir  string
	argv []string
	t    testing.TB
}

// StartSlapd seeds a directory in a temp dir, starts slapd in the
// foreground on ports PickAddr chose (picked again if taken), waits until
// the root DN can bind, and adds the groups. It stops at cleanup.
func StartSlapd(t testing.TB, opts SlapdOptions) *Slapd {
	t.Helper()
	bin := Tool(t, "slapd")
	slapadd := Tool(t, "slapadd")
	requireSlapdModule(t, "back_mdb", "memberof")

	dir := t.TempDir()
	users := opts.Users
	if users == nil {
		users = DefaultSlapdUsers
	}
	s := &Slapd{
		BaseDN:       SlapdPeopleDN,
		GroupBaseDN:  SlapdGroupsDN,
		BindDN:       SlapdReaderDN,
		BindPassword: SlapdReaderPassword,
		Users:        users,
		dir:          dir,
		t:            t,
	}
	var tlsConf string
	if opts.TLS {
		s.CAFile = filepath.Join(dir, "ca.pem")
		cert, key := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key")
		writeSlapdCerts(t, s.CAFile, cert, key)
		tlsConf = fmt.Sprintf("TLSCACertificateFile %s\nTLSCertificateFile %s\nTLSCertificateKeyFile %s\n", s.CAFile, cert, key)
	}

	dbDir := filepath.Join(dir, "db")
	if err := os.Mkdir(dbDir, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "slapd.conf")
	writeFile(t, conf, fmt.Sprintf(`include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
pidfile %[1]s/slapd.pid
argsfile %[1]s/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
%[2]s
database mdb
suffix %[3]q
rootdn %[4]q
rootpw %[5]s
directory %[6]s
maxsize 16777216
overlay memberof
access to attrs=userPassword
	by self read
	by anonymous auth
	by * none
access to *
	by * read
`, dir, tlsConf, SlapdSuffix, SlapdRootDN, SlapdRootPassword, dbDir))

	seed := filepath.Join(dir, "seed.ldif")
	writeFile(t, seed, slapdSeed(users))
	if out, err := runTool(time.Minute, nil, dir, slapadd, "-q", "-f", conf, "-l", seed); err != nil {
		t.Fatalf("slapadd: %v\n%s", err, out)
	}

	// slapd takes port 0 in a URL to mean the default port (389, 636), so
	// it cannot be asked to pick one: the ports are picked here, and
	// picked again if slapd finds one taken.
	const attempts = 5
	for i := 1; ; i++ {
		s.URL = "ldap://" + PickAddr(t) + "/"
		listen := s.URL
		if opts.TLS {
			s.LDAPSURL = "ldaps://" + PickAddr(t) + "/"
			listen += " " + s.LDAPSURL
		}
		// -d keeps slapd in the foreground (even at level 0) so Process
		// owns it; 256 (stats) logs each connection and operation for
		// failing tests.
		s.argv = []string{bin, "-d", "256", "-f", conf, "-h", listen}
		if s.start(i < attempts) {
			break
		}
		t.Logf("slapd: %s taken; picking other ports", listen)
	}
	s.addGroups()
	return s
}

// requireSlapdModule skips (or fails) when Debian's module directory lacks
// a module slapd.conf loads.
func requireSlapdModule(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := os.Stat(filepath.Join("/usr/lib/ldap", n+".so")); err != nil {
			skipOrFail(t, "slapd module %s missing (%v)", n, err)
		}
	}
}

// Start runs slapd (again) on the same ports and data, and waits until it
// answers a bind.
func (s *Slapd) Start() {
	s.t.Helper()
	s.start(false)
}

// start runs slapd and waits until it answers a bind. With retryBind, a
// slapd that exits because its address is taken makes it return false.
func (s *Slapd) start(retryBind bool) bool {
	s.t.Helper()
	s.Proc = StartProcess(s.t, "slapd", s.dir, nil, s.argv...)
	var retry func(string) bool
	if retryBind {
		retry = addrInUse
	}
	return s.Proc.waitReady(s.t, ReadyTimeout, func() error {
		c, err := s.Dial()
		if err != nil {
			return err
		}
		c.Close()
		return nil
	}, retry)
}

// Stop terminates slapd (SIGTERM, which it answers by closing every
// connection) and waits for it to exit.
func (s *Slapd) Stop() {
	s.t.Helper()
	if err := s.Proc.Stop(); err != nil {
		s.t.Fatalf("stopping slapd: %v", err)
	}
}

// Restart is Stop then Start.
func (s *Slapd) Restart() {
	s.t.Helper()
	s.Stop()
	s.Start()
}

// Freeze stops slapd with SIGSTOP: the kernel still accepts connections
// into the listen backlog and keeps open ones, but nothing is answered, as
// with a hung server. It returns once every slapd thread is stopped (kill
// returns when the signal is queued; on a loaded machine slapd may answer
// for a while after that). Thaw (or cleanup) resumes it.
func (s *Slapd) Freeze() {
	s.t.Helper()
	p := s.Proc
	if err := syscall.Kill(p.Pid(), syscall.SIGSTOP); err != nil {
		s.t.Fatalf("freezing slapd: %v", err)
	}
	// Runs before the process's own cleanup, which would otherwise wait
	// its whole grace period for a stopped slapd to act on SIGTERM.
	s.t.Cleanup(func() { _ = syscall.Kill(p.Pid(), syscall.SIGCONT) })
	if err := WaitStopped(p.Pid(), StateTimeout); err != nil {
		s.t.Fatalf("freezing slapd: %v", err)
	}
}

// Thaw resumes a frozen slapd and returns once no thread of it is stopped.
func (s *Slapd) Thaw() {
	s.t.Helper()
	if err := syscall.Kill(s.Proc.Pid(), syscall.SIGCONT); err != nil {
		s.t.Fatalf("thawing slapd: %v", err)
	}
	if err := WaitContinued(s.Proc.Pid(), StateTimeout); err != nil {
		s.t.Fatalf("thawing slapd: %v", err)
	}
}

// UserDN is the DN of the user with that uid.
func (s *Slapd) UserDN(uid string) string {
	return "uid=" + ldap.EscapeDN(uid) + "," + s.BaseDN
}

// Password is the seeded password of uid.
func (s *Slapd) Password(uid string) string {
	for _, u := range s.Users {
		if u.UID == uid {
			return u.Password
		}
	}
	s.t.Fatalf("slapd: no user %q", uid)
	return ""
}

// Dial connects to URL and binds as the root DN, for a test that changes
// the directory. The caller closes the connection.
func (s *Slapd) Dial() (*ldap.Conn, error) {
	c, err := ldap.DialURL(s.URL, ldap.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}))
	if err != nil {
		return nil, err
	}
	c.SetTimeout(5 * time.Second)
	if err := c.Bind(SlapdRootDN, SlapdRootPassword); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// addGroups creates one groupOfNames per group named by the users, through
// slapd so that the memberof overlay sets memberOf on the members.
func (s *Slapd) addGroups() {
	s.t.Helper()
	members := map[string][]string{}
	for _, u := range s.Users {
		for _, g := range u.Groups {
			members[g] = append(members[g], s.UserDN(u.UID))
		}
	}
	if len(members) == 0 {
		return
	}
	c, err := s.Dial()
	if err != nil {
		s.t.Fatalf("slapd: %v", err)
	}
	defer c.Close()
	names := make([]string, 0, len(members))
	for g := range members {
		names = append(names, g)
	}
	slices.Sort(names)
	for _, g := range names {
		req := ldap.NewAddRequest("cn="+ldap.EscapeDN(g)+","+s.GroupBaseDN, nil)
		req.Attribute("objectClass", []string{"groupOfNames"})
		req.Attribute("cn", []string{g})
		req.Attribute("member", members[g])
		if err := c.Add(req); err != nil {
			s.t.Fatalf("slapd: adding group %s: %v", g, err)
		}
	}
}

// slapdSeed is the LDIF slapadd loads: the suffix, the two OUs, the service
// account and the users with salted SHA-1 passwords, as slappasswd makes.
func slapdSeed(users []SlapdUser) string {
	var b strings.Builder
	entry := func(dn string, attrs ...string) {
		fmt.Fprintf(&b, "dn: %s\n", dn)
		for i := 0; i < len(attrs); i += 2 {
			fmt.Fprintf(&b, "%s: %s\n", attrs[i], attrs[i+1])
		}
		b.WriteString("\n")
	}
	entry(SlapdSuffix, "objectClass", "dcObject", "objectClass", "organization", "o", "example", "dc", "example")
	entry(SlapdPeopleDN, "objectClass", "organizationalUnit", "ou", "people")
	entry(SlapdGroupsDN, "objectClass", "organizationalUnit", "ou", "groups")
	entry(SlapdReaderDN, "objectClass", "organizationalRole", "objectClass", "simpleSecurityObject",
		"cn", "reader", "userPassword", sshaPassword(SlapdReaderPassword))
	for _, u := range users {
		// ldif values starting with a space, colon or '<' or holding
		// non-ASCII would need base64; the seed names are plain.
		entry("uid="+ldap.EscapeDN(u.UID)+","+SlapdPeopleDN,
			"objectClass", "inetOrgPerson", "uid", u.UID, "cn", u.UID, "sn", u.UID,
			"userPassword", sshaPassword(u.Password))
	}
	return b.String()
}

// sshaPassword is the {SSHA} form of a password: SHA-1 over password and
// salt, followed by the salt.
func sshaPassword(pw string) string {
	salt := make([]byte, 8)
	_, _ = rand.Read(salt)
	h := sha1.Sum(append([]byte(pw), salt...))
	return "{SSHA}" + base64.StdEncoding.EncodeToString(append(h[:], salt...))
}

// writeSlapdCerts writes a throwaway CA and a server certificate for
// 127.0.0.1 and localhost signed by it.
func writeSlapdCerts(t testing.TB, caPath, certPath, keyPath string) {
	t.Helper()
	ca, cert, key, err := LoopbackCert("wharf e2e LDAP CA")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, caPath, string(ca))
	writeFile(t, certPath, string(cert))
	writeFile(t, keyPath, string(key))
}

// TLSConfig trusts CAFile, for a test client of LDAPSURL or StartTLS.
func (s *Slapd) TLSConfig() *tls.Config {
	s.t.Helper()
	pool := x509.NewCertPool()
	b, err := os.ReadFile(s.CAFile)
	if err != nil || !pool.AppendCertsFromPEM(b) {
		s.t.Fatalf("slapd CA %s: %v", s.CAFile, err)
	}
	return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
}
