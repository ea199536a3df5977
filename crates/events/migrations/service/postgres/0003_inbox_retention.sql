-- Inbox rows are pruned by age (`events::retention`): the index finds the oldest without
-- reading the table.
CREATE INDEX inbox_handled_at ON inbox (handled_at);
