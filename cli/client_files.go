package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/pyvnode/pyvnode/protocol"
	"github.com/pyvnode/pyvnode/protocol/files"
	"github.com/schollz/progressbar/v3"
	ucli "github.com/urfave/cli/v2"
	"golang.org/x/term"
)

// byteBar is a progress bar in bytes on a terminal, nothing elsewhere.
func byteBar(c *ucli.Context, total int64, what string) func(int64) {
	f, ok := env(c).Stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) || c.Bool("json") {
		return nil
	}
	bar := progressbar.NewOptions64(total, progressbar.OptionSetWriter(f), progressbar.OptionSetDescription(what),
		progressbar.OptionShowBytes(true), progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
	return func(n int64) { _ = bar.Set64(n) }
}

func printInfo(w io.Writer, i files.Info) {
	kind := "file"
	if i.Dir {
		kind = "dir"
	}
	fmt.Fprintf(w, "path     %s\ntype     %s\nsize     %d\nmodified %s\n", i.Path, kind, i.Size, i.ModTime.Format(time.RFC3339))
	if i.SHA256 != "" {
		fmt.Fprintf(w, "sha256   %s\n", i.SHA256)
	}
}

func pathCmd(name, usage, cmd string, login bool, result any, show func(w io.Writer, path string)) *ucli.Command {
	return &ucli.Command{Name: name, Usage: usage, ArgsUsage: "PATH", Action: clientAction(1, 1, login, func(s *clientSession) error {
		p := s.c.Args().First()
		return s.call(cmd, map[string]string{"path": p}, result, func(w io.Writer) { show(w, p) })
	})}
}

func fileCommands() []*ucli.Command {
	var info files.Info
	var ls protocol.ListFilesResult
	var pub protocol.PublishResult
	return []*ucli.Command{{
		Name:  "file",
		Usage: "files in your folder on the node (transfers are checked with SHA-256 end to end)",
		Subcommands: []*ucli.Command{
			{Name: "put", Usage: "upload a file", ArgsUsage: "LOCAL [REMOTE]",
				Flags: []ucli.Flag{&ucli.BoolFlag{Name: "resume", Usage: "continue an interrupted upload"}},
				Action: clientAction(1, 2, true, func(s *clientSession) error {
					local := s.c.Args().Get(0)
					remote := s.c.Args().Get(1)
					if remote == "" {
						remote = filepath.Base(local)
					}
					f, err := os.Open(local)
					if err != nil {
						return err
					}
					defer f.Close()
					st, err := f.Stat()
					if err != nil {
						return err
					}
					if !st.Mode().IsRegular() {
						return usagef("%s is not a regular file", local)
					}
					start := time.Now()
					info, err := s.Upload(s.c.Context, remote, f, st.Size(), protocol.TransferOptions{
						Resume: s.c.Bool("resume"), Progress: byteBar(s.c, st.Size(), "upload"),
					})
					if err != nil {
						return err
					}
					return s.print(&info, func(w io.Writer) {
						el := time.Since(start)
						fmt.Fprintf(w, "uploaded %s (%d bytes, %.1f MB/s)\nsha256   %s\n", info.Path, info.Size, float64(info.Size)/el.Seconds()/1e6, info.SHA256)
					})
				})},
			{Name: "get", Usage: "download a file", ArgsUsage: "REMOTE [LOCAL]",
				Flags: []ucli.Flag{&ucli.BoolFlag{Name: "resume", Usage: "continue an interrupted download into LOCAL"}},
				Action: clientAction(1, 2, true, func(s *clientSession) error {
					remote := s.c.Args().Get(0)
					local := s.c.Args().Get(1)
					if local == "" {
						local = filepath.Base(remote)
					}
					// Ask first, so a refused download leaves no empty local file.
					var stat files.Info
					if err := s.Call(s.c.Context, "file.stat", map[string]string{"path": remote}, &stat); err != nil {
						return err
					}
					if stat.Dir {
						return fmt.Errorf("%s is a directory on the node; 'file ls %s' lists it", remote, remote)
					}
					flags := os.O_RDWR | os.O_CREATE
					if !s.c.Bool("resume") {
						flags |= os.O_EXCL
					}
					f, err := os.OpenFile(local, flags, 0o644)
					if errors.Is(err, os.ErrExist) {
						return fmt.Errorf("%s exists: remove it, or give --resume to continue into it", local)
					}
					if err != nil {
						return err
					}
					defer f.Close()
					st, _ := f.Stat()
					start := time.Now()
					info, err := s.Download(s.c.Context, remote, f, st.Size(), f, protocol.TransferOptions{
						Resume: s.c.Bool("resume"), Progress: byteBar(s.c, stat.Size, "download"),
					})
					if err != nil {
						return err
					}
					if err := f.Truncate(info.Size); err != nil {
						return err
					}
					if err := f.Sync(); err != nil {
						return err
					}
					return s.print(&info, func(w io.Writer) {
						el := time.Since(start)
						fmt.Fprintf(w, "downloaded %s to %s (%d bytes, %.1f MB/s)\nsha256     %s (checked)\n", remote, local, info.Size, float64(info.Size)/el.Seconds()/1e6, info.SHA256)
					})
				})},
			{Name: "ls", Usage: "list a directory", ArgsUsage: "[PATH]", Action: clientAction(0, 1, true, func(s *clientSession) error {
				// Fetch every page.
				var all []files.Info
				for from := 0; ; {
					if err := s.Call(s.c.Context, "file.ls", map[string]any{"path": s.c.Args().First(), "from": from}, &ls); err != nil {
						return err
					}
					all = append(all, ls.Entries...)
					if ls.Next == 0 {
						break
					}
					from = ls.Next
				}
				res := protocol.ListFilesResult{Entries: all}
				return s.print(&res, func(w io.Writer) {
					for _, e := range all {
						name := e.Path
						if e.Dir {
							name += "/"
						}
						fmt.Fprintf(w, "%12d  %s  %s\n", e.Size, e.ModTime.Format("2006-01-02 15:04"), name)
					}
				})
			})},
			pathCmd("stat", "size, time and SHA-256 of a file", "file.stat", true, &info, func(w io.Writer, _ string) { printInfo(w, info) }),
			pathCmd("rm", "remove a file", "file.rm", true, nil, func(w io.Writer, p string) { fmt.Fprintf(w, "removed %s\n", p) }),
			pathCmd("mkdir", "create a directory", "file.mkdir", true, nil, func(w io.Writer, p string) { fmt.Fprintf(w, "created %s/\n", p) }),
			pathCmd("rmdir", "remove an empty directory", "file.rmdir", true, nil, func(w io.Writer, p string) { fmt.Fprintf(w, "removed %s/\n", p) }),
			pathCmd("publish", "append a record of a file's SHA-256 to the chain", "file.publish", true, &pub, func(w io.Writer, _ string) {
				fmt.Fprintf(w, "published %s (sha256 %s) as record %s at height %d\n", pub.Path, pub.SHA256, pub.ID, pub.Height)
			}),
		},
	}}
}
