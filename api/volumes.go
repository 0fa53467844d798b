package api

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// VolumeCreate asks for a cluster volume (POST /v1/volumes). Creating a
// volume that exists with the same options succeeds: Docker creates a
// global-scope volume on every host that uses it.
type VolumeCreate struct {
	Name string `json:"name"`
	// Options are the driver options: backend (copy or block), size
	// (block only, e.g. 1GiB).
	Options map[string]string `json:"options,omitempty"`
}

// VolumeAttach asks for a volume's lease for a host (POST
// /v1/volumes/{name}/attach): the host may then mount it.
type VolumeAttach struct {
	Host string `json:"host"`
}

// Volume is a cluster volume as the API shows it.
type Volume struct {
	Name       string            `json:"name"`
	Backend    string            `json:"backend"`
	Owner      string            `json:"owner"` // the lease holder, "" when attached nowhere
	Generation uint64            `json:"generation"`
	SizeBytes  int64             `json:"size_bytes"`
	Options    map[string]string `json:"options,omitempty"`
	Created    time.Time         `json:"created,omitzero"`
	// UsedBy lists the containers that mount it, as host/container.
	UsedBy []string `json:"used_by,omitempty"`
}

// VolumesResponse lists the cluster volumes (GET /v1/volumes).
type VolumesResponse struct {
	Volumes []Volume `json:"volumes"`
}

// CreateVolume creates a cluster volume, or finds it if it exists with the
// same options.
func (c *Client) CreateVolume(ctx context.Context, req VolumeCreate) (*Volume, error) {
	var out Volume
	return &out, c.do(ctx, http.MethodPost, "/v1/volumes", req, &out)
}

// Volumes lists the cluster volumes.
func (c *Client) Volumes(ctx context.Context) (*VolumesResponse, error) {
	var out VolumesResponse
	return &out, c.do(ctx, http.MethodGet, "/v1/volumes", nil, &out)
}

// Volume returns one cluster volume.
func (c *Client) Volume(ctx context.Context, name string) (*Volume, error) {
	var out Volume
	return &out, c.do(ctx, http.MethodGet, "/v1/volumes/"+url.PathEscape(name), nil, &out)
}

// AttachVolume gives host the volume's lease (a no-op if it holds it).
func (c *Client) AttachVolume(ctx context.Context, name, host string) (*Volume, error) {
	var out Volume
	return &out, c.do(ctx, http.MethodPost, "/v1/volumes/"+url.PathEscape(name)+"/attach", VolumeAttach{Host: host}, &out)
}

// RemoveVolume removes a cluster volume and its data.
func (c *Client) RemoveVolume(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/volumes/"+url.PathEscape(name), nil, nil)
}
