package main

import (
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	"github.com/wallphone/wallphone/internal/version"
)

// The usage texts (usage, consoleUsage) are the one description of the command line: help
// for one command is cut from them, so that it cannot drift from the whole.

// usageBlock is one command's entry in a usage text: its first line names the command
// ("  wallphonectl recordings decrypt --identity ..."), the lines after it until the next
// such line describe it.
type usageBlock struct {
	path []string // the words naming the command: recordings, decrypt
	text string
}

var commandWord = regexp.MustCompile(`^[a-z]+$`)

// commandWords is the run of command words at the start of args: the words that name a
// command, before its flags and arguments.
func commandWords(args []string) []string {
	n := 0
	for n < len(args) && commandWord.MatchString(args[n]) {
		n++
	}
	return args[:n]
}

func usageBlocks(text string) []usageBlock {
	var blocks []usageBlock
	for line := range strings.Lines(text) {
		if rest, ok := strings.CutPrefix(line, "  wallphonectl "); ok {
			blocks = append(blocks, usageBlock{path: commandWords(strings.Fields(rest))})
		} else if len(blocks) == 0 {
			continue // the heading
		}
		blocks[len(blocks)-1].text += line
	}
	return blocks
}

// blocksFor is the entries of a usage text that describe path or a command below it.
func blocksFor(text string, path []string) []usageBlock {
	var out []usageBlock
	for _, b := range usageBlocks(text) {
		if len(b.path) >= len(path) && slices.Equal(b.path[:len(path)], path) {
			out = append(out, b)
		}
	}
	return out
}

// usageText is where a command is described: the console has a usage of its own.
func usageText(path []string) string {
	if len(path) > 0 && path[0] == "console" {
		return consoleUsage
	}
	return usage
}

// commandPath is the command args name, as far as the usage knows it: for
// "recordings decrypt --out x" it is recordings decrypt, for "registry frob" registry, for a
// command it does not know nothing.
func commandPath(args []string) []string {
	words := commandWords(args)
	for n := len(words); n > 0; n-- {
		if len(blocksFor(usageText(words[:n]), words[:n])) > 0 {
			return words[:n]
		}
	}
	return nil
}

// helpRequested says whether args ask for help (help COMMAND..., or -h/--help anywhere
// before a --), and the command line the help is about.
func helpRequested(args []string) ([]string, bool) {
	if len(args) > 0 && args[0] == "help" {
		return args[1:], true
	}
	for _, a := range args {
		switch a {
		case "--":
			return nil, false
		case "-h", "-help", "--help":
			return args, true
		}
	}
	return nil, false
}

// writeHelp prints the usage of the command args name: all of it for none, one command's
// entry, or a group's entries (recordings: list and decrypt).
func writeHelp(w io.Writer, args []string) {
	path := commandPath(args)
	switch {
	case len(path) == 0:
		fmt.Fprintf(w, "%s\n\n%s\n", usage,
			"wallphonectl COMMAND --help shows one command's usage; wallphonectl --version the version.")
		return
	case path[0] == "console" && !slices.Equal(path, []string{"console", "cert"}):
		// The console's commands and exit statuses are read together.
		fmt.Fprintln(w, consoleUsage)
		return
	}
	fmt.Fprintln(w, "usage:")
	for _, b := range blocksFor(usageText(path), path) {
		fmt.Fprint(w, strings.TrimRight(b.text, "\n")+"\n")
	}
}

// seeHelp is the hint after a usage error: the help of the command that was not understood.
func seeHelp(args []string) string {
	return fmt.Sprintf("see '%s --help'", strings.Join(append([]string{"wallphonectl"}, commandPath(args)...), " "))
}

func writeVersion(w io.Writer) {
	fmt.Fprintf(w, "wallphonectl %s\n", version.String())
}
