package transport_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"strings"
	"testing"
)

// TestContractHasNoBrokerSyntax keeps the generic contract free of any one
// broker's addressing: routing keys, subjects and topic names are rendered
// by each transport (RabbitMQ's in transport/amqptopology), so that NATS
// and Kafka fit the same Message.
func TestContractHasNoBrokerSyntax(t *testing.T) {
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, ".", func(fi fs.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	pkg := pkgs["transport"]
	if pkg == nil {
		t.Fatal("package transport not found in its directory")
	}
	for _, f := range pkg.Files {
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.BasicLit:
				if n.Kind == token.STRING && strings.Contains(n.Value, "cqrs.") {
					t.Errorf("%s: string %s spells a RabbitMQ routing key in the generic contract; render it in the transport (transport/amqptopology)", fset.Position(n.Pos()), n.Value)
				}
			case *ast.Ident:
				if strings.Contains(n.Name, "RoutingKey") || n.Name == "HeaderCQRSID" {
					t.Errorf("%s: %s is RabbitMQ addressing in the generic contract; it belongs in transport/amqptopology", fset.Position(n.Pos()), n.Name)
					return false
				}
			}
			return true
		})
	}
}
