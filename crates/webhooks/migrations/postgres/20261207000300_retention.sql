-- Delivered deliveries, their tries, and the messages no delivery needs any more are pruned
-- by age (`webhooks::retention`): the oldest delivered, and a message's deliveries, found
-- without reading the tables.
CREATE INDEX webhook_deliveries_delivered ON webhook_deliveries (delivered_at)
    WHERE status = 'delivered';
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id);
