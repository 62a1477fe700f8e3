"""What a scoring produces for people: the ranked leaderboard rows and their tables
(``leaderboard``) and the HTML report (``report``). They read records; they never run anything.

May import: ``harness.core`` through ``harness.execution``.
"""
