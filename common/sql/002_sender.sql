-- PracticePost schema step 002_sender (reserved; filled in by the change that needs it).
SELECT 1;
