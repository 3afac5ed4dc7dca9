-- PracticePost schema step 004_automation (reserved; filled in by the change that needs it).
SELECT 1;
