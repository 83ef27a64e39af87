package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
)

const completionSynopsis = `wharf completion bash|zsh

Prints a completion script for the shell: commands, their subcommands and
flags, files after flags that take a file. Install it as
  bash: /usr/share/bash-completion/completions/wharf
        (or: source <(wharf completion bash))
  zsh:  _wharf in a directory of $fpath, e.g. /usr/share/zsh/vendor-completions/_wharf`

func cmdCompletion(args []string, stdout, stderr io.Writer) error {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprintf(stdout, "Usage: %s\n", completionSynopsis)
		return nil
	}
	if len(args) != 1 {
		fmt.Fprintf(stderr, "Usage: %s\n", completionSynopsis)
		return usageError{errors.New("completion needs one shell: bash or zsh")}
	}
	spec, err := completionSpec()
	if err != nil {
		return err
	}
	switch args[0] {
	case "bash":
		_, err = io.WriteString(stdout, spec.bash())
	case "zsh":
		_, err = io.WriteString(stdout, spec.zsh())
	default:
		return usageError{fmt.Errorf("completion: unknown shell %q; want bash or zsh", args[0])}
	}
	return err
}

// flagSpec is one flag as completion needs it.
type flagSpec struct {
	name string // without dashes
	// value is what the flag takes: "" (a boolean), "file", "directory"
	// or "value" (anything else: nothing to complete).
	value string
}

type completion struct {
	cmds     []command
	flags    map[string][]flagSpec // by "cmd" or "cmd sub"
	fileArgs map[string]bool       // by "cmd"
}

// flagLine matches a flag in flag.PrintDefaults' output: "  -name type"
// (type absent for a boolean), then a newline or a tab.
var flagLine = regexp.MustCompile(`(?m)^  -([\w-]+)(?: (\S+))?(?:\t|$)`)

// completionSpec reads each command's flags from its own --help, so the
// scripts cannot drift from the flag sets they complete.
func completionSpec() (completion, error) {
	c := completion{cmds: commands(), flags: map[string][]flagSpec{}, fileArgs: map[string]bool{}}
	for _, cmd := range c.cmds {
		c.fileArgs[cmd.name] = cmd.fileArgs
		if cmd.noFlags {
			continue
		}
		keys := [][]string{{cmd.name}}
		for _, sub := range cmd.subs {
			keys = append(keys, []string{cmd.name, sub})
		}
		if len(cmd.subs) > 0 {
			keys = keys[1:]
		}
		for _, k := range keys {
			var out bytes.Buffer
			err := cmd.run(append(k[1:], "--help"), &out, &out)
			var ue usageError
			if err != nil && !errors.Is(err, flag.ErrHelp) && !errors.As(err, &ue) {
				return c, fmt.Errorf("completion: wharf %s --help: %w", strings.Join(k, " "), err)
			}
			var fl []flagSpec
			for _, m := range flagLine.FindAllStringSubmatch(out.String(), -1) {
				if len(m[1]) == 1 {
					continue // -u and the like: the long form is offered
				}
				f := flagSpec{name: m[1]}
				switch m[2] {
				case "":
				case "file", "directory":
					f.value = m[2]
				default:
					f.value = "value"
				}
				fl = append(fl, f)
			}
			key := strings.Join(k, " ")
			c.flags[key] = fl
			if len(k) == 2 { // the command alone offers every sub's flags
				for _, f := range fl {
					if !slices.Contains(c.flags[cmd.name], f) {
						c.flags[cmd.name] = append(c.flags[cmd.name], f)
					}
				}
			}
		}
	}
	return c, nil
}

// keys lists the flag table's keys in command-table order.
func (c completion) keys() []string {
	var out []string
	for _, cmd := range c.cmds {
		if _, ok := c.flags[cmd.name]; ok {
			out = append(out, cmd.name)
		}
		for _, sub := range cmd.subs {
			if _, ok := c.flags[cmd.name+" "+sub]; ok {
				out = append(out, cmd.name+" "+sub)
			}
		}
	}
	return out
}

// shellCases writes the case arms shared by bash and zsh (the syntax is
// the same): subs, flags and the value of each flag.
func (c completion) shellCases(b *strings.Builder) {
	b.WriteString("_wharf_subs() {\n\tcase $1 in\n")
	for _, cmd := range c.cmds {
		if len(cmd.subs) > 0 {
			fmt.Fprintf(b, "\t%s) echo %q ;;\n", cmd.name, strings.Join(cmd.subs, " "))
		}
	}
	b.WriteString("\tesac\n}\n\n")

	b.WriteString("_wharf_flags() {\n\tcase $1 in\n")
	for _, k := range c.keys() {
		var names []string
		for _, f := range c.flags[k] {
			names = append(names, "--"+f.name)
		}
		fmt.Fprintf(b, "\t%q) echo %q ;;\n", k, strings.Join(names, " "))
	}
	b.WriteString("\tesac\n}\n\n")

	b.WriteString("# _wharf_value CMD --FLAG: file, directory or value; nothing for a switch.\n")
	b.WriteString("_wharf_value() {\n\tcase \"$1 $2\" in\n")
	seen := map[string]bool{}
	for _, k := range c.keys() {
		cmd, _, _ := strings.Cut(k, " ")
		for _, f := range c.flags[k] {
			arm := cmd + " --" + f.name
			if f.value == "" || seen[arm] {
				continue
			}
			seen[arm] = true
			fmt.Fprintf(b, "\t%q) echo %s ;;\n", arm, f.value)
		}
	}
	b.WriteString("\tesac\n}\n\n")

	b.WriteString("_wharf_file_args() {\n\tcase $1 in\n")
	for _, cmd := range c.cmds {
		if cmd.fileArgs {
			fmt.Fprintf(b, "\t%s) return 0 ;;\n", cmd.name)
		}
	}
	b.WriteString("\tesac\n\treturn 1\n}\n\n")
}

// scan is the part of the completion function that finds the command, its
// subcommand and whether the word before the cursor is a flag wanting a
// value; bash and zsh share it, given the words array and the index of
// the word under the cursor.
const scan = `	local cmd= sub= key= skip= w f i
	for ((i = FIRST; i < CWORD; i++)); do
		w=${WORDS[i]}
		if [[ -n $skip ]]; then
			skip=
			continue
		fi
		if [[ -z $cmd ]]; then
			[[ $w == -* ]] && continue
			cmd=$w key=$w
			continue
		fi
		case $w in
		-*=*) ;;
		-*)
			f=${w#-} f=${f#-}
			[[ -n $(_wharf_value "$cmd" "--$f") ]] && skip=1
			;;
		*)
			if [[ -z $sub && -n $(_wharf_subs "$cmd") ]]; then
				sub=$w key="$cmd $w"
			fi
			;;
		esac
	done
	local cur=${WORDS[CWORD]} prev=
	((CWORD > FIRST)) && prev=${WORDS[CWORD - 1]}
	local want=
	if [[ -n $cmd && $prev == -* && $prev != -*=* ]]; then
		f=${prev#-} f=${f#-}
		want=$(_wharf_value "$cmd" "--$f")
	fi
`

func (c completion) bash() string {
	var b strings.Builder
	b.WriteString("# bash completion for wharf; generated by `wharf completion bash`.\n")
	b.WriteString("# Install as /usr/share/bash-completion/completions/wharf.\n\n")
	c.shellCases(&b)
	var names []string
	for _, cmd := range c.cmds {
		names = append(names, cmd.name)
	}
	b.WriteString("_wharf() {\n")
	b.WriteString(strings.NewReplacer("FIRST", "1", "CWORD", "COMP_CWORD", "WORDS", "COMP_WORDS").Replace(scan))
	fmt.Fprintf(&b, `	COMPREPLY=()
	case $want in
	file)
		compopt -o filenames 2>/dev/null
		mapfile -t COMPREPLY < <(compgen -f -- "$cur")
		return
		;;
	directory)
		compopt -o filenames 2>/dev/null
		mapfile -t COMPREPLY < <(compgen -d -- "$cur")
		return
		;;
	value) return ;;
	esac
	if [[ -z $cmd ]]; then
		mapfile -t COMPREPLY < <(compgen -W %q -- "$cur")
		return
	fi
	local subs=$(_wharf_subs "$cmd")
	if [[ -n $subs && -z $sub && $cur != -* ]]; then
		mapfile -t COMPREPLY < <(compgen -W "$subs" -- "$cur")
	elif [[ $cur == -* ]]; then
		mapfile -t COMPREPLY < <(compgen -W "$(_wharf_flags "$key")" -- "$cur")
	elif _wharf_file_args "$cmd"; then
		compopt -o filenames 2>/dev/null
		mapfile -t COMPREPLY < <(compgen -f -- "$cur")
	fi
}

complete -F _wharf wharf
`, strings.Join(names, " "))
	return b.String()
}

func (c completion) zsh() string {
	var b strings.Builder
	b.WriteString("#compdef wharf\n")
	b.WriteString("# zsh completion for wharf; generated by `wharf completion zsh`.\n")
	b.WriteString("# Install as _wharf in a directory of $fpath (/usr/share/zsh/vendor-completions/_wharf).\n\n")
	c.shellCases(&b)
	b.WriteString("_wharf() {\n\tlocal -a cmds\n\tcmds=(\n")
	for _, cmd := range c.cmds {
		fmt.Fprintf(&b, "\t\t%s\n", shellQuote(cmd.name+":"+cmd.summary))
	}
	b.WriteString("\t)\n")
	b.WriteString(strings.NewReplacer("FIRST", "2", "CWORD", "CURRENT", "WORDS", "words").Replace(scan))
	b.WriteString(`	case $want in
	file)
		_files
		return
		;;
	directory)
		_files -/
		return
		;;
	value)
		_message "${prev#--} value"
		return
		;;
	esac
	if [[ -z $cmd ]]; then
		_describe -t commands 'wharf command' cmds
		return
	fi
	local subs=$(_wharf_subs "$cmd")
	if [[ -n $subs && -z $sub && $cur != -* ]]; then
		compadd -- ${=subs}
	elif [[ $cur == -* ]]; then
		compadd -- ${=$(_wharf_flags "$key")}
	elif _wharf_file_args "$cmd"; then
		_files
	fi
}

_wharf "$@"
`)
	return b.String()
}

// shellQuote quotes s for sh and zsh: single quotes, with ' as '\”.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
