package store

import (
	"context"
	"database/sql"
	"fmt"
)

// validHash: the image hash is kept in the one spelling measure/imagehash
// prints, so that lookups by string equality work.
func validHash(h string) error {
	if len(h) != 64 {
		return fmt.Errorf("image hash %q: %d characters, want 64 lower-case hex digits: %w", h, len(h), ErrInvalid)
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return fmt.Errorf("image hash %q: %q at %d, want lower-case hex: %w", h, c, i, ErrInvalid)
		}
	}
	return nil
}

// AllowImage allowlists img.Hash. Allowing it again updates the note and
// keeps the first Added.
func (s *sqlStore) AllowImage(ctx context.Context, img AllowedImage) error {
	if err := validHash(img.Hash); err != nil {
		return err
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO allowed_images (hash, note, added_ms) VALUES (?, ?, ?)
			ON CONFLICT (hash) DO UPDATE SET note = excluded.note`), img.Hash, img.Note, ms(img.Added))
		if err != nil {
			return fmt.Errorf("allow image %s: %w", img.Hash, err)
		}
		return nil
	})
}

func (s *sqlStore) DisallowImage(ctx context.Context, hash string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.d.q(`DELETE FROM allowed_images WHERE hash = ?`), hash)
		if err != nil {
			return fmt.Errorf("disallow image %s: %w", hash, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("disallow image %s: %w", hash, err)
		} else if n == 0 {
			return fmt.Errorf("disallow image %s: not allowlisted: %w", hash, ErrNotFound)
		}
		return nil
	})
}

func (s *sqlStore) Allowlist(ctx context.Context) ([]AllowedImage, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT hash, note, added_ms FROM allowed_images ORDER BY hash`)
	if err != nil {
		return nil, fmt.Errorf("allowlist: %w", err)
	}
	defer rows.Close()
	var out []AllowedImage
	for rows.Next() {
		var a AllowedImage
		var added int64
		if err := rows.Scan(&a.Hash, &a.Note, &added); err != nil {
			return nil, fmt.Errorf("allowlist: %w", err)
		}
		a.Added = fromMS(added)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("allowlist: %w", err)
	}
	return out, nil
}
