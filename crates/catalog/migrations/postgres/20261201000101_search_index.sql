-- Search through an index: trigram GIN indexes (pg_trgm) over the lower-cased name and
-- description answer `LIKE '%word%'` (a word, or one trigram of it for typos) without reading
-- the other products; the exact rules and the relevance are then applied to those alone.
--
-- pg_trgm is a trusted extension: a database owner may create it. Where the migration's role
-- may not, an administrator runs `CREATE EXTENSION pg_trgm WITH SCHEMA public` once.
CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;
CREATE INDEX products_search_name ON products USING gin (search_name public.gin_trgm_ops);
CREATE INDEX products_search_description ON products USING gin (search_description public.gin_trgm_ops);
