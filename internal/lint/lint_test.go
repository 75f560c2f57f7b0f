// Package lint holds checks over ddgi's own source that go vet lacks.
package lint

import (
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
	root := filepath.Join("..", "..")
	fset := token.NewFileSet()
	var found []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
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
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range found {
		t.Errorf("%s: assigns the variable that torch.Try's result overwrites", f)
	}
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
