-- Sessions that ended are pruned by when they began (`users::retention`): the index finds
-- the oldest without reading the table.
CREATE INDEX refresh_token_families_created ON refresh_token_families (created_at);
