package bench

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// newFlags returns the flag set of a mode, named for its error messages
// ("concord-bench compare"). Errors and -h go to stderr; -h prints usage,
// which should end with a "Flags:" line, and then the flags' defaults.
func newFlags(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		_, _ = fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args into fs. done is true when the caller must return
// err at once: after -h, which has printed the usage and is no error (err is
// nil), or after a bad flag, which the flag set has already reported.
func parseFlags(fs *flag.FlagSet, args []string) (done bool, err error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return true, nil
		}
		return true, err
	}
	return false, nil
}
