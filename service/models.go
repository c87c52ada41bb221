package service

import (
	"context"

	"github.com/hegate/hegate"
	"github.com/hegate/hegate/catalog"
)

// Models: the catalog holds the rules of names, formats and compilation;
// these add who may, and the audit record.

// ListModels lists the built-in models and the latest version of each of
// the tenant's models, any status.
func (s *Service) ListModels(ctx context.Context, p Principal) ([]catalog.Entry, error) {
	return s.catalog.List(ctx, p.Tenant)
}

// ModelVersions lists the versions of one model, newest first.
func (s *Service) ModelVersions(ctx context.Context, p Principal, name hegate.ModelID) ([]catalog.Entry, error) {
	return s.catalog.Versions(ctx, p.Tenant, name)
}

// ModelVersion describes one version, any status.
func (s *Service) ModelVersion(ctx context.Context, p Principal, name hegate.ModelID, version int) (catalog.Entry, error) {
	return s.catalog.Version(ctx, p.Tenant, name, version)
}

// UploadModel stores a model file of the tenant's and enqueues its
// compile job (admins only). created is false for a replay of the same
// idempotency key. params.Tenant is set from the principal.
func (s *Service) UploadModel(ctx context.Context, p Principal, params catalog.UploadParams) (catalog.Entry, bool, error) {
	const op = "models.upload"
	if err := p.requireAdmin(op); err != nil {
		return catalog.Entry{}, false, s.denied(ctx, p, "model.upload", string(params.Name), err)
	}
	params.Tenant = p.Tenant
	e, created, err := s.catalog.Upload(ctx, params)
	if err != nil {
		return catalog.Entry{}, false, wrap(err, "uploading model %s", truncate(string(params.Name), 80))
	}
	if created {
		s.audit(ctx, p, "model.upload", string(e.Name), map[string]any{"version": e.Version, "format": params.Format})
	}
	return e, created, nil
}

// DeleteModel deletes every version of one of the tenant's models
// (admins only).
func (s *Service) DeleteModel(ctx context.Context, p Principal, name hegate.ModelID) error {
	const op = "models.delete"
	if err := p.requireAdmin(op); err != nil {
		return s.denied(ctx, p, "model.delete", string(name), err)
	}
	if err := s.catalog.Delete(ctx, p.Tenant, name); err != nil {
		return wrap(err, "deleting model %s", truncate(string(name), 80))
	}
	s.audit(ctx, p, "model.delete", string(name), nil)
	return nil
}
