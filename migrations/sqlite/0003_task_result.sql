-- A profile's summary of a finished run (JSON), e.g. compress sizes and ratio, the HLS
-- ladder, an archive's entry counts.
ALTER TABLE tasks ADD COLUMN result TEXT;
