package servertest

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them, except
// the expiry goroutine of GORM's prepared-statement cache, which GORM never
// stops (its lru.go says so; TestPreparedStatements starts one).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("gorm.io/gorm/internal/lru.NewLRU[...].func1"))
}
