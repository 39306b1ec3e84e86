package sluice_test

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Apps show what the public API can do: none imports an internal package
// (their tests may use internal test helpers).
func TestAppsImportNoInternalPackage(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("apps", "*", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no apps found")
	}
	fset := token.NewFileSet()
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, file, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(path, "github.com/sluice-io/sluice/") && strings.Contains(path+"/", "/internal/") {
				t.Errorf("%s imports %s", file, path)
			}
		}
	}
}
