-- PracticePost schema step 003_composer (reserved; filled in by the change that needs it).
SELECT 1;
