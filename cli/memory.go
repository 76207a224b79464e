package cli

import (
	"os"
	"runtime/debug"

	"github.com/dustin/go-humanize"
	ucli "github.com/urfave/cli/v2"
)

// DefaultMemoryLimit is the Go heap's soft limit unless --memory-limit or
// GOMEMLIMIT says otherwise. Badger's table builders allocate in bursts;
// the limit makes the collector give that memory back instead of letting
// the heap double.
const DefaultMemoryLimit = "256MiB"

func memoryLimitFlag() *ucli.StringFlag {
	return &ucli.StringFlag{
		Name:  "memory-limit",
		Value: DefaultMemoryLimit,
		Usage: "soft limit for the Go heap (e.g. 256MiB, 1GiB; 0 for none); GOMEMLIMIT wins when the flag is not given",
	}
}

// applyMemoryLimit sets the runtime's soft memory limit from the flag.
func applyMemoryLimit(c *ucli.Context) error {
	if !c.IsSet("memory-limit") && os.Getenv("GOMEMLIMIT") != "" {
		return nil
	}
	v := c.String("memory-limit")
	if v == "0" {
		debug.SetMemoryLimit(-1 >> 1) // math.MaxInt64: no limit
		return nil
	}
	n, err := humanize.ParseBytes(v)
	if err != nil || n < 32<<20 {
		return usagef("--memory-limit %q: give a size of at least 32MiB, like 256MiB or 1GiB", v)
	}
	debug.SetMemoryLimit(int64(n))
	return nil
}
