package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/sirupsen/logrus"
	"go.etcd.io/etcd/api/v3/authpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/etcd-appliance/appliance/inventory"
)

// Names of what ConfigureAuth creates.
const (
	RootUser     = "root"
	ReadOnlyRole = "readonly"
	ReaderUser   = "reader"
)

// ReadPassword reads a password file; the value is never logged.
func ReadPassword(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("root password file: %w", err)
	}
	pw := strings.TrimRight(string(b), "\r\n")
	if pw == "" {
		return "", fmt.Errorf("root password file %s is empty", path)
	}
	return pw, nil
}

// ConfigureAuth turns on etcd's authentication, once: the root user (with
// password, and the root role), a read-only role and a user "reader"
// without password that authenticates with a client certificate whose
// common name is "reader". It is idempotent and changes nothing once auth
// is on.
func ConfigureAuth(ctx context.Context, a clientv3.Auth, password string, log logrus.FieldLogger) error {
	st, err := a.AuthStatus(ctx)
	if err != nil {
		return fmt.Errorf("auth status: %w", err)
	}
	if st.Enabled {
		log.Info("auth: already enabled")
		return nil
	}
	exists := func(err error, what ...error) error {
		for _, w := range what {
			if errors.Is(err, w) {
				return nil
			}
		}
		return err
	}
	steps := []struct {
		what string
		do   func() error
	}{
		{"user root", func() error {
			_, err := a.UserAdd(ctx, RootUser, password)
			return exists(err, rpctypes.ErrUserAlreadyExist)
		}},
		{"role root", func() error {
			_, err := a.RoleAdd(ctx, "root")
			return exists(err, rpctypes.ErrRoleAlreadyExist)
		}},
		{"root has the root role", func() error { _, err := a.UserGrantRole(ctx, RootUser, "root"); return err }},
		{"role readonly", func() error {
			_, err := a.RoleAdd(ctx, ReadOnlyRole)
			return exists(err, rpctypes.ErrRoleAlreadyExist)
		}},
		{"readonly reads every key", func() error {
			_, err := a.RoleGrantPermission(ctx, ReadOnlyRole, "\x00", "\x00", clientv3.PermissionType(authpb.READ))
			return err
		}},
		{"user reader (client certificate, no password)", func() error {
			_, err := a.UserAddWithOptions(ctx, ReaderUser, "", &clientv3.UserAddOptions{NoPassword: true})
			return exists(err, rpctypes.ErrUserAlreadyExist)
		}},
		{"reader has the readonly role", func() error { _, err := a.UserGrantRole(ctx, ReaderUser, ReadOnlyRole); return err }},
		{"auth enable", func() error { _, err := a.AuthEnable(ctx); return err }},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			return fmt.Errorf("auth: %s: %w", s.what, err)
		}
	}
	log.Info("auth: enabled (users root and reader, role readonly)")
	return nil
}

// ErrNoPassword means auth must be enabled but the root password file is
// not on this machine.
var ErrNoPassword = errors.New("root password file not found")

// EnsureAuth enables auth when the inventory says auth = true and it is
// not on yet, with the root password from the inventory's
// root_password_file. The cluster must serve.
func EnsureAuth(ctx context.Context, inv *inventory.Inventory, m Membership, log logrus.FieldLogger) error {
	if !inv.Cluster.Auth {
		return nil
	}
	c, ok := m.(*Client)
	if !ok {
		return fmt.Errorf("auth: %T cannot manage users", m)
	}
	st, err := c.KV().AuthStatus(ctx)
	if err != nil {
		return fmt.Errorf("auth status: %w", err)
	}
	if st.Enabled {
		return nil
	}
	pw, err := ReadPassword(inv.Cluster.RootPasswordFile)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %s; fix: run apply where that file is (the operator's machine), or create it here (mode 0600)", ErrNoPassword, inv.Cluster.RootPasswordFile)
	}
	if err != nil {
		return err
	}
	return ConfigureAuth(ctx, c.KV(), pw, log)
}
