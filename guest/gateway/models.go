package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/cocoon-appliance/cocoon/guest/engine"
)

// ErrModelList is an upstream /v1/models answer that cannot be read.
var ErrModelList = errors.New("gateway: bad upstream model list")

// maxModelList bounds the /v1/models answer read.
const maxModelList = 1 << 20

// FetchModels reads the models an upstream serves from its /v1/models, to
// fill Upstream.Models at start-up. rt nil: http.DefaultTransport.
func FetchModels(ctx context.Context, rt http.RoundTripper, baseURL string) ([]engine.Model, error) {
	if rt == nil {
		rt = http.DefaultTransport
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(baseURL, "/")+"/v1/models", nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUpstream, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxModelList+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUpstream, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: GET /v1/models: status %d, want 200", ErrUpstream, resp.StatusCode)
	}
	if len(body) > maxModelList {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrModelList, maxModelList)
	}
	return parseModelList(body)
}

// parseModelList reads OpenAI's model list, {"object":"list","data":[{"id",
// "owned_by",...}]}, with vLLM's and SGLang's max_model_len when present
// (llama.cpp's model entries have none: the context length stays 0,
// unknown, and max_tokens is then bounded by Options.MaxTokens alone).
func parseModelList(body []byte) ([]engine.Model, error) {
	var list struct {
		Object *string `json:"object"`
		Data   []struct {
			ID          *string `json:"id"`
			OwnedBy     string  `json:"owned_by"`
			MaxModelLen *int64  `json:"max_model_len"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrModelList, err)
	}
	if list.Object == nil || *list.Object != "list" {
		return nil, fmt.Errorf("%w: object is not \"list\"", ErrModelList)
	}
	if len(list.Data) == 0 {
		return nil, fmt.Errorf("%w: no models", ErrModelList)
	}
	seen := map[string]bool{}
	models := make([]engine.Model, 0, len(list.Data))
	for i, d := range list.Data {
		if d.ID == nil || *d.ID == "" {
			return nil, fmt.Errorf("%w: data[%d] has no id", ErrModelList, i)
		}
		if seen[*d.ID] {
			return nil, fmt.Errorf("%w: model %q listed twice", ErrModelList, *d.ID)
		}
		seen[*d.ID] = true
		m := engine.Model{ID: *d.ID, OwnedBy: d.OwnedBy}
		if d.MaxModelLen != nil {
			if *d.MaxModelLen < 0 || *d.MaxModelLen > maxCount {
				return nil, fmt.Errorf("%w: model %q max_model_len = %d, want 0..%d", ErrModelList, *d.ID, *d.MaxModelLen, maxCount)
			}
			m.ContextLength = int(*d.MaxModelLen)
		}
		models = append(models, m)
	}
	return models, nil
}
