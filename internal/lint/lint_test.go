// Package lint holds checks over ddgi's own source that go vet lacks.
package lint

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoErrorSwallowedByTry fails on `x = torch.Try(func() { … x = … })`:
// Try's result overwrites the error the closure stored, so a failed write
// (say) reports success — `ddgi diffuse --out missing-dir/f.png` once
// printed "wrote" and exited 0 that way. Keep the two errors apart.
func TestNoErrorSwallowedByTry(t *testing.T) {
	fset := token.NewFileSet()
	var found []string
	err := eachGoFile(fset, func(path string, f *ast.File) {
		ast.Inspect(f, func(n ast.Node) bool {
			as, ok := n.(*ast.AssignStmt)
			if !ok || as.Tok != token.ASSIGN || len(as.Lhs) != 1 || len(as.Rhs) != 1 {
				return true // x := Try(…) declares a new x, apart from the closure's
			}
			target, ok := as.Lhs[0].(*ast.Ident)
			if !ok || !isTryCall(as.Rhs[0]) {
				return true
			}
			lit := as.Rhs[0].(*ast.CallExpr).Args[0].(*ast.FuncLit)
			if declares(lit.Body, target.Name) {
				return true // the closure's x is its own
			}
			ast.Inspect(lit.Body, func(m ast.Node) bool {
				inner, ok := m.(*ast.AssignStmt)
				if !ok || inner.Tok != token.ASSIGN {
					return true
				}
				for _, l := range inner.Lhs {
					if id, ok := l.(*ast.Ident); ok && id.Name == target.Name {
						found = append(found, fset.Position(inner.Pos()).String())
					}
				}
				return true
			})
			return true
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range found {
		t.Errorf("%s: assigns the variable that torch.Try's result overwrites", f)
	}
}

// root is the module's folder, seen from this package's.
var root = filepath.Join("..", "..")

// eachGoFile parses every .go file of the module (not runs/, testdata/ or
// hidden folders) and calls fn with its path and syntax.
func eachGoFile(fset *token.FileSet, fn func(path string, f *ast.File)) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "runs" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		fn(path, f)
		return nil
	})
}

// atomicWriter is the one file allowed to create final files itself: it
// implements imageio.WriteAtomic (temporary file, sync, rename).
var atomicWriter = filepath.Join("internal", "imageio", "imageio.go")

// TestOutputsAreWrittenAtomically fails on os.Create, os.WriteFile,
// ioutil.WriteFile and os.OpenFile with O_TRUNC outside tests and the
// atomic writer: each truncates or creates a final path and fills it in
// place, so a killed process (or a full disk) leaves a half-written
// file under the real name. Write through imageio.WriteAtomic, SavePNG or
// SaveGIF instead (safetensors streams big files through its own
// CreateTemp + rename, which this allows: CreateTemp never names a final
// path). Appending (log.jsonl) and O_EXCL creation (the run lock) are
// not replacements and pass.
func TestOutputsAreWrittenAtomically(t *testing.T) {
	fset := token.NewFileSet()
	var found []string
	err := eachGoFile(fset, func(path string, f *ast.File) {
		rel, _ := filepath.Rel(root, path)
		if strings.HasSuffix(path, "_test.go") || rel == atomicWriter {
			return
		}
		osName, ioutilName := importName(f, "os"), importName(f, "io/ioutil")
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			pkg, ok := sel.X.(*ast.Ident)
			if !ok {
				return true
			}
			bad := false
			switch {
			case pkg.Name == osName && (sel.Sel.Name == "Create" || sel.Sel.Name == "WriteFile"):
				bad = true
			case pkg.Name == ioutilName && sel.Sel.Name == "WriteFile":
				bad = true
			case pkg.Name == osName && sel.Sel.Name == "OpenFile" && len(call.Args) == 3:
				bad = mentions(call.Args[1], osName, "O_TRUNC")
			}
			if bad {
				found = append(found, fmt.Sprintf("%s: %s.%s", fset.Position(call.Pos()), pkg.Name, sel.Sel.Name))
			}
			return true
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range found {
		t.Errorf("%s writes a final path in place; use imageio.WriteAtomic (temporary file + rename)", f)
	}
}

// importName is the name path is imported under in f ("" when it is not).
func importName(f *ast.File, path string) string {
	for _, imp := range f.Imports {
		if strings.Trim(imp.Path.Value, `"`) != path {
			continue
		}
		if imp.Name != nil {
			return imp.Name.Name
		}
		return path[strings.LastIndex(path, "/")+1:]
	}
	return ""
}

// mentions reports whether e refers to pkg.name (as in os.O_WRONLY|os.O_TRUNC).
func mentions(e ast.Expr, pkg, name string) bool {
	found := false
	ast.Inspect(e, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok {
			if x, ok := sel.X.(*ast.Ident); ok && x.Name == pkg && sel.Sel.Name == name {
				found = true
			}
		}
		return !found
	})
	return found
}

// isTryCall matches torch.Try(func() {…}) (or Try inside package torch).
func isTryCall(e ast.Expr) bool {
	call, ok := e.(*ast.CallExpr)
	if !ok || len(call.Args) != 1 {
		return false
	}
	if _, ok := call.Args[0].(*ast.FuncLit); !ok {
		return false
	}
	switch fn := call.Fun.(type) {
	case *ast.SelectorExpr:
		x, ok := fn.X.(*ast.Ident)
		return ok && x.Name == "torch" && fn.Sel.Name == "Try"
	case *ast.Ident:
		return fn.Name == "Try"
	}
	return false
}

// declares reports whether body declares name (var or :=) anywhere.
func declares(body *ast.BlockStmt, name string) bool {
	found := false
	ast.Inspect(body, func(n ast.Node) bool {
		switch d := n.(type) {
		case *ast.ValueSpec:
			for _, id := range d.Names {
				found = found || id.Name == name
			}
		case *ast.AssignStmt:
			if d.Tok == token.DEFINE {
				for _, l := range d.Lhs {
					if id, ok := l.(*ast.Ident); ok && id.Name == name {
						found = true
					}
				}
			}
		}
		return !found
	})
	return found
}
