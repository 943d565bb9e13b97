-- What each stage needs (`needs:` in ocelot.yml), from the attempt's first event, for
-- `ocelot status BUILD` to draw the graph. Empty for stages that ran in order (every build
-- from before).
ALTER TABLE stages ADD COLUMN needs TEXT[] NOT NULL DEFAULT '{}';
