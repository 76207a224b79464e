package web

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed assets
var assetFS embed.FS

// assetHandler serves the panel. A path that names no file and has no
// extension gives index.html, so the panel's own routes load it too.
func assetHandler() http.Handler {
	sub, err := fs.Sub(assetFS, "assets")
	if err != nil {
		panic(err) // the directory is embedded at build time
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(path.Clean(r.URL.Path), "/")
		if name == "" {
			name = "index.html"
		}
		if _, err := fs.Stat(sub, name); err != nil {
			if strings.Contains(path.Base(name), ".") {
				// A file the panel does not have (favicon.ico, a stale
				// script name): say so rather than answer the page.
				http.NotFound(w, r)
				return
			}
			name = "index.html"
		}
		// The assets change only with the binary; revalidate rather than
		// keep a stale panel after an upgrade.
		w.Header().Set("Cache-Control", "no-cache")
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/" + name
		if name == "index.html" {
			r2.URL.Path = "/"
		}
		files.ServeHTTP(w, r2)
	})
}
