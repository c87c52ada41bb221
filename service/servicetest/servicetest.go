// Package servicetest builds, for tests, a service over a real store: a
// migrated SQLite database and a blob folder under t.TempDir(), a catalog,
// the service, two tenants and three console users.
//
//	r := servicetest.New(t, servicetest.Config{})
//	keys, err := r.Service.ListAPIKeys(ctx, servicetest.Principal(r.Alice))
package servicetest

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/catalog"
	"github.com/hegate/hegate/he"
	"github.com/hegate/hegate/service"
	"github.com/hegate/hegate/storage"
	"github.com/hegate/hegate/storage/blobfs"
	"github.com/hegate/hegate/storage/sqlite"
)

// Password is the password of the rig's console users.
const Password = "correct horse battery staple"

// Config configures a Rig; the zero value is a catalog without built-in
// models, no default budget and the real clock.
type Config struct {
	// Builtin are the catalog's built-in models.
	Builtin []*he.Model
	// AllowInsecure lets uploads name presets below 128-bit security.
	AllowInsecure bool
	// EditCatalog, if not nil, changes the rest of the catalog's
	// configuration (such as MaxSourceBytes) before the catalog is made.
	EditCatalog func(*catalog.Config)
	// DefaultBudget is the service's default budget (service.Config).
	DefaultBudget storage.BudgetLimit
	// Clock tells the service the time; nil means time.Now.
	Clock func() time.Time
}

// Rig is a service over a store of its own, with the tenants acme and
// globex and their console users: Alice (acme's admin), Victor (acme's
// viewer) and Gina (globex's admin), whose password is Password.
type Rig struct {
	Store   storage.Store
	Blobs   storage.Blobs
	Catalog *catalog.Catalog
	Service *service.Service

	Acme, Globex        storage.Tenant
	Alice, Victor, Gina storage.User
}

// New builds a Rig; the store is closed when the test ends.
func New(t testing.TB, cfg Config) *Rig {
	t.Helper()
	ctx := t.Context()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(dir, "hegate.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	blobs, err := blobfs.New(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	cc := catalog.Config{Store: st, Blobs: blobs, Builtin: cfg.Builtin, AllowInsecure: cfg.AllowInsecure}
	if cfg.EditCatalog != nil {
		cfg.EditCatalog(&cc)
	}
	cat, err := catalog.New(cc)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := service.New(service.Config{Store: st, Blobs: blobs, Catalog: cat, DefaultBudget: cfg.DefaultBudget, Clock: cfg.Clock})
	if err != nil {
		t.Fatal(err)
	}
	r := &Rig{Store: st, Blobs: blobs, Catalog: cat, Service: svc}
	if r.Acme, _, err = service.CreateTenant(ctx, st, "acme"); err != nil {
		t.Fatal(err)
	}
	if r.Globex, _, err = service.CreateTenant(ctx, st, "globex"); err != nil {
		t.Fatal(err)
	}
	op := service.Principal{Role: service.RoleOperator, Operator: "test"}
	user := func(tenant hegate.TenantID, name, role string) storage.User {
		u, err := svc.CreateUser(ctx, op, service.CreateUserParams{Tenant: tenant, Name: name, Role: role, Password: Password})
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	r.Alice = user(r.Acme.ID, "alice", service.RoleAdmin)
	r.Victor = user(r.Acme.ID, "victor", service.RoleViewer)
	r.Gina = user(r.Globex.ID, "gina", service.RoleAdmin)
	return r
}

// Principal is a tenant's console user as a service principal, to act
// through the service as that user.
func Principal(u storage.User) service.Principal {
	role := service.RoleViewer
	if u.Role == storage.UserAdmin {
		role = service.RoleAdmin
	}
	return service.Principal{Tenant: u.TenantID, User: u.ID, Role: role}
}
