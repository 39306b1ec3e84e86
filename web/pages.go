package web

// Pages: the monitor's extension point. An application adds a page of its
// own (its HTML fragment, scripts and styles, and a JSON API) and the
// monitor serves it inside its own frame, behind its own token and method
// checks, with a link to it in every page's header.

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"regexp"
	"strings"
)

// PageBody is the file of a Page's Assets that holds its HTML fragment.
const PageBody = "body.html"

// Page is a page of an application's own in the monitor, added with Pages.
// The monitor serves it at /pages/{Name}/: its frame (the monitor's header,
// with a link to every page, and its stylesheet and script) around the
// fragment in the Assets file PageBody. Its other Assets files are served
// at /pages/{Name}/static/, so that the fragment refers to them as
// "static/{file}"; scripts and styles must be such files, as the monitor's
// Content-Security-Policy allows nothing inline and nothing from another
// origin. API, if set, serves /api/pages/{Name}/ with that prefix
// stripped, so that its own routes start at "/".
//
// The monitor's script, /static/monitor.js, which the frame loads before
// the page's scripts, defines the global sluice with what a page needs:
// sluice.api(path) fetches the page's API and returns its JSON or throws
// its error message; sluice.every(fn) runs fn now and every second and
// shows in the header whether it worked; sluice.el and sluice.svg build
// elements, setting text as text, never as HTML; sluice.fmt formats a
// number; sluice.lineChart and sluice.barChart draw small SVG charts.
type Page struct {
	// Name is the page's segment in its addresses: lower-case letters,
	// digits and '-', starting with a letter.
	Name string
	// Title is the page's heading and the text of its link. Default: Name.
	Title string
	// Assets holds the page's PageBody and the files it refers to.
	Assets fs.FS
	// API serves the page's requests under /api/pages/{Name}/. The monitor
	// lets only GET and HEAD requests through, with the token when one is
	// required. Answer as the monitor does, with WriteJSON and WriteError.
	// Default: none, and those requests get 404.
	API http.Handler
}

// Pages adds pages to the monitor. A page whose Name is not valid, taken
// already, or whose Assets have no PageBody makes Listen fail with the
// reason, and its addresses answer 500 with it.
func Pages(ps ...Page) Opt {
	return func(m *Monitor) { m.pages = append(m.pages, ps...) }
}

var pageName = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

// pageLink is a page as the header links to it.
type pageLink struct {
	Name  string `json:"name"`
	Title string `json:"title"`
	Path  string `json:"path"`
}

// frame is what the frame template fills in.
type frame struct {
	Page  pageLink
	Body  template.HTML
	Pages []pageLink
}

var frameTemplate = template.Must(template.ParseFS(assets, "assets/page.html"))

// addPages registers the pages' routes, or notes why a page cannot be
// served; the header links only to the pages that can.
func (m *Monitor) addPages() {
	seen := map[string]bool{}
	bodies := make([][]byte, len(m.pages))
	for i, p := range m.pages {
		body, err := checkPage(p, seen)
		if err != nil {
			err = fmt.Errorf("monitor: page %q: %w", p.Name, err)
			m.setupErrs = append(m.setupErrs, err)
			if pageName.MatchString(p.Name) && !seen[p.Name] {
				seen[p.Name] = true
				m.mux.HandleFunc("/pages/"+p.Name+"/", func(w http.ResponseWriter, _ *http.Request) {
					WriteError(w, http.StatusInternalServerError, err.Error())
				})
			}
			continue
		}
		seen[p.Name] = true
		bodies[i] = body
		title := p.Title
		if title == "" {
			title = p.Name
		}
		m.links = append(m.links, pageLink{Name: p.Name, Title: title, Path: "/pages/" + p.Name + "/"})
	}
	links := m.links
	for i, p := range m.pages {
		if bodies[i] == nil {
			continue
		}
		link, body := links[0], bodies[i]
		links = links[1:]
		m.mux.HandleFunc("/pages/"+p.Name, func(w http.ResponseWriter, r *http.Request) {
			// With its query, which may carry the token.
			to := link.Path
			if r.URL.RawQuery != "" {
				to += "?" + r.URL.RawQuery
			}
			http.Redirect(w, r, to, http.StatusMovedPermanently)
		})
		m.mux.HandleFunc("/pages/"+p.Name+"/{$}", func(w http.ResponseWriter, _ *http.Request) {
			m.serveFrame(w, frame{Page: link, Body: template.HTML(body), Pages: m.links})
		})
		m.mux.Handle("/pages/"+p.Name+"/static/", http.StripPrefix("/pages/"+p.Name+"/static", noListing(http.FileServerFS(p.Assets))))
		prefix := "/api/pages/" + p.Name
		if p.API != nil {
			m.mux.Handle(prefix+"/", http.StripPrefix(prefix, p.API))
		} else {
			m.mux.HandleFunc(prefix+"/", func(w http.ResponseWriter, r *http.Request) {
				WriteError(w, http.StatusNotFound, fmt.Sprintf("page %s has no API: %s", p.Name, r.URL.Path))
			})
		}
	}
}

// checkPage returns the page's body, or why it cannot be served.
func checkPage(p Page, seen map[string]bool) ([]byte, error) {
	switch {
	case !pageName.MatchString(p.Name):
		return nil, errors.New("want a name of lower-case letters, digits and '-', starting with a letter")
	case seen[p.Name]:
		return nil, errors.New("another page has this name")
	case p.Assets == nil:
		return nil, fmt.Errorf("no assets: want at least %s", PageBody)
	}
	body, err := fs.ReadFile(p.Assets, PageBody)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", PageBody, err)
	}
	return body, nil
}

func (m *Monitor) serveFrame(w http.ResponseWriter, f frame) {
	var b bytes.Buffer
	if err := frameTemplate.Execute(&b, f); err != nil {
		WriteError(w, http.StatusInternalServerError, fmt.Sprintf("page %s: %v", f.Page.Name, err))
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b.Bytes())
}

// WriteJSON answers v as JSON with status, as the monitor's own API does:
// as encoding/json writes it, except that a float that is NaN or infinite,
// which JSON has no number for, is written as the string "NaN", "+Inf" or
// "-Inf". A page's API uses it so that its answers read like the
// monitor's.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	writeJSON(w, status, v)
}

// WriteError answers status with the JSON object {"error": msg}, as the
// monitor's own API does for every error.
func WriteError(w http.ResponseWriter, status int, msg string) {
	writeError(w, status, msg)
}

// isFramePath reports whether path is the address of a page's frame, with
// or without its slash: the only addresses besides "/" that take the token
// from the query.
func (m *Monitor) isFramePath(path string) bool {
	for _, l := range m.links {
		if path == l.Path || path == strings.TrimSuffix(l.Path, "/") {
			return true
		}
	}
	return false
}
