"""What a scoring produces for people: the ranked leaderboard rows and their tables
(``leaderboard``), the HTML report (``report``) and its section on where the measures disagree
(``disagreement``). They read records; they never run or train anything.

May import: ``harness.core`` through ``harness.execution``.
"""
