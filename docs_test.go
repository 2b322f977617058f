package cqrsync_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// TestEveryPackageIsDocumented walks the module: every package has a
// package comment, every exported name outside tests a doc comment, and
// every public package (not internal/, not a main package) a runnable
// Example in its tests.
func TestEveryPackageIsDocumented(t *testing.T) {
	t.Parallel()
	type pkg struct {
		name                 string
		hasDoc, hasExample   bool
		internal, isMainOnly bool
	}
	pkgs := map[string]*pkg{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			return err
		}
		dir := filepath.Dir(path)
		p := pkgs[dir]
		if p == nil {
			p = &pkg{internal: strings.HasPrefix(dir, "internal") || strings.Contains(dir, "/internal"), isMainOnly: true}
			pkgs[dir] = p
		}
		if strings.HasSuffix(path, "_test.go") {
			for _, decl := range f.Decls {
				if fn, ok := decl.(*ast.FuncDecl); ok && fn.Recv == nil && strings.HasPrefix(fn.Name.Name, "Example") {
					p.hasExample = true
				}
			}
			return nil
		}
		p.name = f.Name.Name
		p.isMainOnly = p.isMainOnly && f.Name.Name == "main"
		p.hasDoc = p.hasDoc || f.Doc != nil
		undocumented(t, fset, f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for dir, p := range pkgs {
		if p.name == "" {
			continue // tests only
		}
		if !p.hasDoc {
			t.Errorf("package %s (%s) has no package comment: add a doc.go", p.name, dir)
		}
		if !p.internal && !p.isMainOnly && !p.hasExample {
			t.Errorf("package %s (%s) has no Example: add an example_test.go, runnable with // Output: where it can be", p.name, dir)
		}
	}
}

// undocumented reports the exported names of f without a doc comment,
// leaving out methods of unexported types.
func undocumented(t *testing.T, fset *token.FileSet, f *ast.File) {
	t.Helper()
	report := func(pos token.Pos, name string) {
		t.Errorf("%s: exported %s has no doc comment", fset.Position(pos), name)
	}
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.FuncDecl:
			if !d.Name.IsExported() || d.Doc != nil {
				continue
			}
			if d.Recv != nil {
				typ := d.Recv.List[0].Type
				if s, ok := typ.(*ast.StarExpr); ok {
					typ = s.X
				}
				if ix, ok := typ.(*ast.IndexExpr); ok {
					typ = ix.X
				}
				if ix, ok := typ.(*ast.IndexListExpr); ok {
					typ = ix.X
				}
				if id, ok := typ.(*ast.Ident); ok && !id.IsExported() {
					continue
				}
			}
			report(d.Pos(), d.Name.Name)
		case *ast.GenDecl:
			for _, s := range d.Specs {
				switch s := s.(type) {
				case *ast.TypeSpec:
					if s.Name.IsExported() && s.Doc == nil && d.Doc == nil {
						report(s.Pos(), s.Name.Name)
					}
				case *ast.ValueSpec:
					for _, n := range s.Names {
						if n.IsExported() && s.Doc == nil && d.Doc == nil && s.Comment == nil {
							report(n.Pos(), n.Name)
						}
					}
				}
			}
		}
	}
}
