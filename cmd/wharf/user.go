package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"golang.org/x/term"

	"github.com/wharf-registry/wharf/auth"
	"github.com/wharf-registry/wharf/config"
)

// stdin is where `wharf user add` reads a password that is piped in.
var stdin io.Reader = os.Stdin

func cmdUser(args []string, stdout, stderr io.Writer) error {
	const synopsis = `wharf user add|rm|ls [NAME] [--htpasswd FILE | --config FILE]

Manages the users of an htpasswd file (bcrypt hashes). The running server
notices the change within a second; no restart is needed.

  wharf user add NAME    add NAME or set their password: asked twice on a
                         terminal, else read from the first line of stdin
                         (echo "$PW" | wharf user add ci-bot)
  wharf user rm NAME     remove NAME
  wharf user ls          list the users

The file is --htpasswd, else auth.htpasswd of --config (or $WHARF_CONFIG),
else ./htpasswd.`
	fs := newFlags("user", synopsis, stderr)
	file := fs.String("htpasswd", "", "htpasswd `file` to change")
	cfgPath := fs.String("config", os.Getenv("WHARF_CONFIG"), "config `file` whose auth.htpasswd names the file")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return usageError{errors.New("user needs a subcommand: add, rm or ls")}
	}
	path, err := htpasswdPath(*file, *cfgPath)
	if err != nil {
		return err
	}
	sub, rest := fs.Arg(0), fs.Args()[1:]
	switch sub {
	case "add", "passwd":
		if len(rest) != 1 {
			return usageError{errors.New("usage: wharf user add NAME")}
		}
		name := rest[0]
		if err := auth.ValidUserName(name); err != nil {
			return usageError{err}
		}
		pw, err := readPassword(name, stderr)
		if err != nil {
			return err
		}
		added, err := auth.SetPassword(path, name, pw)
		if err != nil {
			return err
		}
		if added {
			fmt.Fprintf(stdout, "added user %s to %s\n", name, path)
		} else {
			fmt.Fprintf(stdout, "changed the password of %s in %s\n", name, path)
		}
	case "rm", "remove", "delete":
		if len(rest) != 1 {
			return usageError{errors.New("usage: wharf user rm NAME")}
		}
		ok, err := auth.DeleteUser(path, rest[0])
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("no user %s in %s", rest[0], path)
		}
		fmt.Fprintf(stdout, "removed user %s from %s\n", rest[0], path)
	case "ls", "list":
		h, err := auth.NewHtpasswd(path, nil)
		if err != nil {
			return err
		}
		users := h.Users()
		sort.Strings(users)
		for _, u := range users {
			fmt.Fprintln(stdout, u)
		}
	default:
		return usageError{fmt.Errorf("unknown user subcommand %q: use add, rm or ls", sub)}
	}
	return nil
}

func htpasswdPath(flagValue, cfgPath string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	if cfgPath != "" {
		cfg, err := config.Load(cfgPath)
		if err != nil {
			return "", err
		}
		if cfg.Auth.Htpasswd == "" {
			return "", fmt.Errorf("%s sets no auth.htpasswd; add `auth: {htpasswd: ./htpasswd}` to it or pass --htpasswd FILE", cfgPath)
		}
		return cfg.Auth.Htpasswd, nil
	}
	return "./htpasswd", nil
}

// readPassword asks twice on a terminal, or reads one line from a pipe.
func readPassword(name string, stderr io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintf(stderr, "Password for %s: ", name)
		a, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(stderr, "Again: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		if string(a) != string(b) {
			return "", errors.New("the passwords do not match; nothing was changed")
		}
		return string(a), nil
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", errors.New("no password on stdin; pipe one in (echo \"$PW\" | wharf user add NAME) or run on a terminal")
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", errors.New("the password on stdin is empty")
	}
	return pw, nil
}
